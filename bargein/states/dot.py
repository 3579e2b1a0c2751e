"""Graphviz drawings of a ``StateTable``: DOT text, and SVG through the ``dot`` program.

A state is a rounded box with its name in bold and, below, its description, speech policy
and entry/exit actions (``diagram.state_notes``); interruptible states are filled orange.
A compound state is a cluster holding its sub-states: its initial child gets the start
arrow, its history the ``H`` circle; a compound with no initial child can rest in itself,
so it also holds a box of its own. An edge of a compound is drawn from (or to) the
cluster's border (Graphviz's ``compound=true`` with ``ltail``/``lhead``), once for all its
sub-states. Timed edges are dashed.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from html import escape

from bargein.errors import DiagramError
from bargein.states.diagram import _history_targets, history_node, moves, state_notes
from bargein.states.table import StateTable

_FILL = "#f4f4f4"
_INTERRUPTIBLE = "#ffe7c2"


def _anchor(table: StateTable, name: str) -> str:
    """The node that stands for ``name`` on an edge: itself, or its cluster's anchor."""
    return f"{name}__anchor" if table.children(name) and table.state(name).initial else name


def _notes(table: StateTable, name: str) -> str:
    return "".join(
        f'<br/><font point-size="9">{escape(line)}</font>'
        for note in state_notes(table, name) for line in textwrap.wrap(note, 42)
    )


def _node(table: StateTable, name: str, indent: str) -> str:
    notes = _notes(table, name)
    fill = _INTERRUPTIBLE if table.interruptible(name) else _FILL
    return f'{indent}"{name}" [label=<<b>{escape(name)}</b>{notes}>, fillcolor="{fill}"];'


def _cluster(table: StateTable, name: str, indent: str, history: set[str]) -> list[str]:
    inner = indent + "    "
    fill = _INTERRUPTIBLE if table.interruptible(name) else "#fbfbfb"
    initial = table.state(name).initial
    notes = "" if initial is None else _notes(table, name)
    lines = [f'{indent}subgraph "cluster_{name}" {{',
             f'{inner}label=<<b>{escape(name)}</b>{notes}>; style="rounded,filled"; '
             f'fillcolor="{fill}"; color="#888888";']
    if initial is not None:
        lines.append(f'{inner}"{name}__anchor" [shape=point, width=0.12, label=""];')
        lines.append(f'{inner}"{name}__anchor" -> "{_anchor(table, initial)}" [label=""];')
    else:
        lines.append(_node(table, name, inner))
    if name in history:
        lines.append(f'{inner}"{history_node(name)}" [shape=circle, label="H", width=0.3, '
                     'fixedsize=true, fillcolor="white"];')
    for child in table.children(name):
        if table.children(child):
            lines += _cluster(table, child, inner, history)
        else:
            lines.append(_node(table, child, inner))
    lines.append(f"{indent}}}")
    return lines


def to_dot(table: StateTable) -> str:
    """Graphviz DOT text of the table."""
    lines = [
        f'digraph "{table.name}" {{',
        "    rankdir=LR;",
        "    compound=true;",
        f'    node [shape=box, style="rounded,filled", fillcolor="{_FILL}", '
        'fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    __start [shape=point, label=""];',
        f'    __start -> "{_anchor(table, table.initial)}";',
    ]
    history = _history_targets(table)
    for state in table.states:
        if state.parent is not None:
            continue
        if table.children(state.name):
            lines += _cluster(table, state.name, "    ", history)
        else:
            lines.append(_node(table, state.name, "    "))
    timed = {label for edge in table.edges() if edge.after_ms is not None
             for label in [f"after {edge.after_ms} ms"]}
    for (source, target), labels in moves(table).items():
        attrs = [f'label="{escape(chr(10).join(labels))}"'.replace("\n", "\\n")]
        if table.children(source) and source not in table.path(_leaf_of(table, target)):
            attrs.append(f'ltail="cluster_{source}"')
        if target in table.state_names and table.children(target) \
                and table.state(target).initial is not None \
                and target not in table.path(source):
            attrs.append(f'lhead="cluster_{target}"')
        if all(any(label.startswith(t) for t in timed) for label in labels):
            attrs.append('style="dashed"')
        lines.append(f'    "{_anchor(table, source)}" -> "{_anchor_target(table, target)}" '
                     f'[{", ".join(attrs)}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _leaf_of(table: StateTable, target: str) -> str:
    return target.removesuffix("_history") if target not in table.state_names else target


def _anchor_target(table: StateTable, target: str) -> str:
    return target if target not in table.state_names else _anchor(table, target)


def to_svg(table: StateTable) -> str:
    """SVG text of the table, drawn by Graphviz ``dot``."""
    dot = shutil.which("dot")
    if dot is None:
        raise DiagramError(
            "SVG needs Graphviz's 'dot' program, which is not installed "
            "(apt-get install graphviz); --format mermaid needs nothing"
        )
    result = subprocess.run(
        [dot, "-Tsvg"], input=to_dot(table), capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or "<svg" not in result.stdout:
        raise DiagramError(f"graphviz 'dot' failed: {result.stderr.strip()[:200]}")
    return result.stdout
