"""State diagrams and pages rendered from a ``StateTable``, so documentation cannot drift
from the code.

Mermaid needs nothing installed. SVG goes through Graphviz's ``dot`` program
(``bargein.states.dot``); when it is missing we refuse with a clear error instead of
writing something else into an ``.svg``. ``to_markdown`` writes a whole page: the Mermaid
diagram, the states table (``to_markdown_table``, each ``State.description`` with what the
state inherits and does) and the edges table (triggers, guards, destinations, reasons,
actions).

What is drawn. A diagram shows moves: internal edges (legal events that change nothing)
are left out, unless they do something (an action, a timer). Sub-states are drawn inside
their parent (a Mermaid composite state, a Graphviz cluster); an edge of the parent is
drawn once, from the parent, and holds for every sub-state. A history edge leads to the
parent's ``H`` pseudo-state. A timed edge is labelled ``after N ms``; an edge's actions
follow ``do``; guards are in brackets. A state's description, its ``on_enter``/``on_exit``
actions and its speech policy are written in the state.
"""

from __future__ import annotations

from collections.abc import Callable

from bargein.errors import DiagramError
from bargein.states.table import Action, StateTable, Transition

FORMATS = ("mermaid", "svg", "md")


def action_names(actions: tuple[Action, ...]) -> str:
    return ", ".join(getattr(a, "__name__", "action") for a in actions)


def trigger_label(edge: Transition) -> str:
    return f"after {edge.after_ms} ms" if edge.after_ms is not None else edge.trigger


def guard_label(edge: Transition) -> str:
    return ", ".join([*edge.conditions, *(f"not {u}" for u in edge.unless)])


def edge_label(edge: Transition) -> str:
    """``trigger [guards] do actions``, as on the diagrams."""
    label = trigger_label(edge)
    if edge.conditions or edge.unless:
        label += f" [{guard_label(edge)}]"
    if edge.actions:
        label += f" do {action_names(edge.actions)}"
    return label


def drawn(edge: Transition) -> bool:
    """Moves, and internal edges that do something."""
    return (edge.dest is not None and edge.dest != edge.source) or bool(
        edge.actions or edge.after_ms is not None)


def history_node(state: str) -> str:
    return f"{state}_history"


def moves(table: StateTable) -> dict[tuple[str, str], list[str]]:
    """Labels of every drawn edge, grouped by (source, target), in table order; a history
    edge's target is its destination's ``history_node``."""
    out: dict[tuple[str, str], list[str]] = {}
    for edge in table.edges():
        if not drawn(edge):
            continue
        dest = edge.dest or edge.source
        target = history_node(dest) if edge.history else dest
        labels = out.setdefault((edge.source, target), [])
        if edge_label(edge) not in labels:
            labels.append(edge_label(edge))
    return out


def state_notes(table: StateTable, name: str) -> list[str]:
    """What a state's box says besides its name: description, speech policy, actions."""
    state = table.state(name)
    notes = [state.description] if state.description else []
    policy = table.user_speech(name)
    if policy != "send" and state.user_speech is not None:
        notes.append(f"user speech: {policy}")
    if state.on_enter:
        notes.append(f"entry / {action_names(state.on_enter)}")
    if state.on_exit:
        notes.append(f"exit / {action_names(state.on_exit)}")
    return notes


def _history_targets(table: StateTable) -> set[str]:
    return {e.dest for e in table.transitions if e.history and e.dest is not None}


# --- Mermaid ---------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    return text.replace(": ", " - ").replace(":", " ").replace(";", ",")


def to_mermaid(table: StateTable) -> str:
    """Mermaid ``stateDiagram-v2`` text of the table."""
    lines = ["stateDiagram-v2", f"    [*] --> {table.initial}"]
    history = _history_targets(table)

    def declare(name: str, indent: str) -> None:
        note = " (interruptible)" if table.interruptible(name) else ""
        children = table.children(name)
        if not children:
            lines.append(f"{indent}{name} : {name}{note}")
            lines.extend(f"{indent}{name} : {_mermaid_text(n)}" for n in state_notes(table, name))
            return
        # a composite state takes no description lines (Mermaid refuses them): its label
        # is given with ``as``, its notes in a note beside it
        lines.append(f'{indent}state "{name}{note}" as {name} {{' if note
                     else f"{indent}state {name} {{")
        initial = table.state(name).initial
        if initial is not None:
            lines.append(f"{indent}    [*] --> {initial}")
        if name in history:
            lines.append(f'{indent}    state "H" as {history_node(name)}')
        for child in children:
            declare(child, indent + "    ")
        lines.append(f"{indent}}}")
        notes = state_notes(table, name)
        if notes:
            lines.append(f"{indent}note right of {name}")
            lines.extend(f"{indent}    {_mermaid_text(n)}" for n in notes)
            lines.append(f"{indent}end note")

    for state in table.states:
        if state.parent is None:
            declare(state.name, "    ")
    for (source, target), labels in moves(table).items():
        lines.append(f"    {source} --> {target} : {_mermaid_text(' / '.join(labels))}")
    return "\n".join(lines) + "\n"


# --- Markdown --------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown_table(table: StateTable) -> str:
    """A Markdown table of the states and what each means (``State.description``), with
    what each inherits and does."""
    lines = ["| state | meaning |", "|---|---|"]
    for state in table.states:
        extra = []
        if state.parent is not None:
            extra.append(f"in {state.parent}")
        if table.interruptible(state.name):
            extra.append("interruptible")
        if state.initial is not None:
            extra.append(f"enters {state.initial}")
        extra += [n for n in state_notes(table, state.name) if n != state.description]
        timers = ", ".join(f"after {ms} ms" for _, ms in table.timers(state.name))
        if timers:
            extra.append(f"timed: {timers}")
        meaning = state.description + (f" ({'; '.join(extra)})" if extra else "")
        lines.append(f"| {_cell(state.name)} | {_cell(meaning.strip())} |")
    return "\n".join(lines) + "\n"


def to_edges_table(table: StateTable) -> str:
    """A Markdown table of every edge (automatic ones included), one row per source,
    destination, guard, reason and actions with its triggers together; by source, and for
    one source in the order the machine tries them."""
    rows: dict[tuple[str, ...], list[str]] = {}
    written = set(table.transitions)
    for edge in table.edges():
        dest = "(stays)" if edge.dest is None else edge.dest + (" (history)" if edge.history
                                                                 else "")
        reason = edge.reason + ("" if edge in written else " (automatic)")
        key = (edge.source, guard_label(edge), dest, reason.strip(), action_names(edge.actions))
        triggers = rows.setdefault(key, [])
        if trigger_label(edge) not in triggers:
            triggers.append(trigger_label(edge))
    lines = ["| from | on | guard | to | reason | actions |", "|---|---|---|---|---|---|"]
    order = {name: i for i, name in enumerate(table.state_names)}
    for (source, guard, dest, reason, actions), triggers in sorted(
            rows.items(), key=lambda row: order[row[0][0]]):
        cells = (source, ", ".join(triggers), guard, dest, reason, actions)
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"


def to_markdown(table: StateTable, *, title: bool = True) -> str:
    """A documentation page of the table: diagram, states, edges. ``title=False`` leaves
    out the first heading (the README embeds the page under its own)."""
    head = f"# The `{table.name}` machine\n\n" if title else ""
    triggers = (f"The program's own triggers: {', '.join(f'`{t}`' for t in table.triggers)}.\n\n"
                if table.triggers else "")
    return (f"{head}```mermaid\n{to_mermaid(table)}```\n\n{to_markdown_table(table)}\n"
            f"{triggers}{to_edges_table(table)}")


# --- choosing --------------------------------------------------------------------------


def to_dot(table: StateTable) -> str:
    from bargein.states.dot import to_dot as dot

    return dot(table)


def to_svg(table: StateTable) -> str:
    from bargein.states.dot import to_svg as svg

    return svg(table)


def render(table: StateTable, fmt: str) -> str:
    """The table as ``mermaid``, ``svg`` or ``md`` (a page) text."""
    renderers: dict[str, Callable[[StateTable], str]] = {
        "mermaid": to_mermaid, "svg": to_svg, "md": to_markdown}
    renderer = renderers.get(fmt)
    if renderer is None:
        raise DiagramError(f"unknown diagram format {fmt!r}: use {', '.join(FORMATS)}")
    return renderer(table)
