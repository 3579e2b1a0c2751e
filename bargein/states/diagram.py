"""State diagrams rendered from a ``StateTable``, so a diagram cannot drift from the code.

Mermaid needs nothing installed. SVG goes through Graphviz's ``dot`` program; when it is
missing we refuse with a clear error instead of writing something else into an ``.svg``.
Internal edges (legal events that change nothing) are left out: a diagram shows moves.
``to_markdown_table`` writes the states and their ``State.description`` as the README's
state table, checked like the diagrams.
"""

from __future__ import annotations

import shutil
import subprocess

from bargein.errors import DiagramError
from bargein.states.table import StateTable, Transition


def _label(edge: Transition) -> str:
    guards = [*edge.conditions, *(f"not {u}" for u in edge.unless)]
    return f"{edge.trigger} [{', '.join(guards)}]" if guards else edge.trigger


def _moves(table: StateTable) -> dict[tuple[str, str], list[str]]:
    """Labels of every moving edge, grouped by (source, dest), in table order."""
    moves: dict[tuple[str, str], list[str]] = {}
    for edge in table.edges():
        if edge.dest is None or edge.dest == edge.source:
            continue
        labels = moves.setdefault((edge.source, edge.dest), [])
        if _label(edge) not in labels:
            labels.append(_label(edge))
    return moves


def to_mermaid(table: StateTable) -> str:
    """Mermaid ``stateDiagram-v2`` text of the table."""
    lines = ["stateDiagram-v2", f"    [*] --> {table.initial}"]
    for state in table.states:
        note = " (interruptible)" if state.interruptible else ""
        lines.append(f"    {state.name} : {state.name}{note}")
    for (source, dest), labels in _moves(table).items():
        lines.append(f"    {source} --> {dest} : {' / '.join(labels)}")
    return "\n".join(lines) + "\n"


def to_markdown_table(table: StateTable) -> str:
    """A Markdown table of the states and what each means (``State.description``)."""
    lines = ["| state | meaning |", "|---|---|"]
    for state in table.states:
        meaning = state.description + (" (interruptible)" if state.interruptible else "")
        lines.append(f"| {_cell(state.name)} | {_cell(meaning.strip())} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_dot(table: StateTable) -> str:
    """Graphviz DOT text of the table."""
    lines = [
        f'digraph "{table.name}" {{',
        "    rankdir=LR;",
        '    node [shape=box, style="rounded,filled", fillcolor="#f4f4f4", fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    __start [shape=point, label=""];',
        f'    __start -> "{table.initial}";',
    ]
    for state in table.states:
        fill = ', fillcolor="#ffe7c2"' if state.interruptible else ""
        lines.append(f'    "{state.name}" [label="{state.name}"{fill}];')
    for (source, dest), labels in _moves(table).items():
        lines.append(f'    "{source}" -> "{dest}" [label="{chr(10).join(labels)}"];'.replace(
            "\n", "\\n"))
    lines.append("}")
    return "\n".join(lines) + "\n"


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


def render(table: StateTable, fmt: str) -> str:
    """The table as ``mermaid`` or ``svg`` text."""
    if fmt == "mermaid":
        return to_mermaid(table)
    if fmt == "svg":
        return to_svg(table)
    raise DiagramError(f"unknown diagram format {fmt!r}: use mermaid or svg")
