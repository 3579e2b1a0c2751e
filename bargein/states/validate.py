"""What makes a table unable to drive the core at all, found when the table is made.

``StateTable`` refuses such a table with ``TableProblems``, one line per problem (all of
them, not the first): an unknown state, trigger or condition, a state named twice, a
missing core state, a parent that does not exist or loops, an ``initial`` that is not a
child, a history edge into a state without children, a timed edge not written with
``after()``. The checks of a well-formed table's behaviour (can every state get back to
``listening``? can two edges both fire?) are ``bargein.states.check``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from bargein.states.names import (
    CONDITIONS,
    CORE_STATES,
    IDLE,
    INTERRUPTED,
    SPEECH_POLICIES,
    TRIGGERS,
    is_timer_trigger,
    timer_trigger,
)

if TYPE_CHECKING:
    from bargein.states.table import State, StateTable, Transition


def structural_problems(table: StateTable) -> list[str]:
    """Every reason ``table`` cannot be built into a machine, one line each."""
    out = _state_problems(table)
    index = {s.name: s for s in table.states}
    declared = set(TRIGGERS) | set(table.triggers)
    for t in table.triggers:
        if t in TRIGGERS or is_timer_trigger(t) or not t.isidentifier():
            out.append(f"trigger {t!r} cannot be declared: it is a core trigger, a timer's "
                       "name or not an identifier")
    for e in table.transitions:
        out += _edge_problems(e, index, declared)
    return out


def _state_problems(table: StateTable) -> list[str]:
    out: list[str] = []
    names = [s.name for s in table.states]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        out.append(f"state table {table.name!r} names a state twice: {', '.join(twice)}")
    index = {s.name: s for s in table.states}
    missing = [s for s in CORE_STATES if s not in index]
    if missing:
        out.append(f"state table {table.name!r} lacks core states {missing}")
    if table.initial not in index:
        out.append(f"the initial state {table.initial!r} is not a state of the table")
    for s in table.states:
        if not s.name or "." in s.name or s.name != s.name.strip():
            out.append(f"state name {s.name!r} must be non-empty, without '.' or spaces around")
        if s.parent is not None:
            if s.parent not in index:
                out.append(f"state {s.name!r} names unknown parent {s.parent!r}")
            elif s.parent in (IDLE, INTERRUPTED):
                out.append(f"state {s.parent!r} cannot have sub-states (state {s.name!r})")
            if s.name in CORE_STATES:
                out.append(f"core state {s.name!r} cannot be a sub-state")
        if s.initial is not None and (s.initial not in index
                                      or index[s.initial].parent != s.name):
            out.append(f"state {s.name!r}: initial {s.initial!r} is not one of its children")
        if s.user_speech is not None and s.user_speech not in SPEECH_POLICIES:
            out.append(f"state {s.name!r}: user_speech {s.user_speech!r} is not one of "
                       f"{', '.join(SPEECH_POLICIES)}")
    for s in table.states:
        seen = {s.name}
        up = s.parent
        while up is not None and up in index:
            if up in seen:
                out.append(f"state {s.name!r} is its own ancestor (parents loop)")
                break
            seen.add(up)
            up = index[up].parent
    if INTERRUPTED in index and index[INTERRUPTED].interruptible:
        out.append("the interrupted state cannot itself be interruptible")
    return out


def _edge_problems(e: Transition, index: Mapping[str, State], declared: set[str]) -> list[str]:
    out: list[str] = []
    for s in (e.source, e.dest):
        if s is not None and s not in index:
            out.append(f"transition {e.trigger!r} names unknown state {s!r}")
    if e.after_ms is not None:
        if e.after_ms <= 0:
            out.append(f"timed edge out of {e.source!r} must wait more than 0 ms")
        elif e.trigger != timer_trigger(e.source, e.after_ms):
            out.append(f"timed edge {e.trigger!r} out of {e.source!r}: write it with "
                       f"after({e.after_ms}, {e.source!r}, ...)")
    elif e.trigger not in declared:
        out.append(
            f"transition names unknown trigger {e.trigger!r} (out of {e.source!r}); "
            f"triggers: {', '.join(TRIGGERS)}, or declare it in StateTable.triggers"
        )
    for c in (*e.conditions, *e.unless):
        if c not in CONDITIONS:
            out.append(
                f"transition {e.trigger!r} names unknown condition {c!r}; "
                f"conditions: {', '.join(CONDITIONS)}"
            )
    if e.history:
        has_children = any(s.parent == e.dest for s in index.values())
        if e.dest is None or not has_children:
            out.append(f"history edge {e.trigger!r} out of {e.source!r} must lead into a "
                       "state with sub-states")
    return out
