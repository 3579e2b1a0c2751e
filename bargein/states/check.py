"""Static checks of a state table: what would make a conversation stuck, dead or ambiguous.

``check_table(table)`` returns a ``CheckReport``: one line per problem, and on a good table
one line per thing verified. ``bargein check --machine MODULE:NAME`` prints it, adds the
generated tests' run against the core (``bargein.testing.explore``), and exits non-zero
on any problem. A table that cannot be built at all (an unknown trigger, state or
condition) never gets here: ``StateTable`` refuses it with one line per problem
(``TableProblems``), and the command prints those.

The checks read the table as a graph of the states the machine can rest in (every state
but a compound with an initial child), with each state's edges and those it inherits
(its own first, then its parent's, as the machine tries them). Guards are not evaluated:
an edge counts as possible when some combination of facts lets it fire. So the checks
find what can never work, whatever the facts:

1. a state from which ``listening`` cannot be reached without ``disconnected`` or ``stop``
   (the conversation would be stuck there until the connection drops);
2. a state that cannot be reached from the initial state;
3. two edges of one trigger and source that can both fire, where table order silently
   decides, and an edge that can never fire because one before it always does (a later,
   less guarded edge is the earlier one's fallback: that is the intended use of order);
4. an interruptible state from which no barge-in trigger leads into ``interrupted``;
5. a timed edge out of a state that cannot be left otherwise (the conversation could only
   wait it out), or out of the initial state (never entered, its timer never starts);
6. a trigger the table declares and no edge uses.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

from bargein.states.names import BARGE_IN_TRIGGERS, INTERRUPTED, LEAVE_TRIGGERS, LISTENING
from bargein.states.table import StateTable, Transition


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What ``check_table`` found: ``problems`` (empty on a good table) and ``verified``."""

    table: str
    problems: tuple[str, ...]
    verified: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The report as ``bargein check`` prints it."""
        return [f"problem: {p}" for p in self.problems] + [f"ok: {v}" for v in self.verified]


class TableGraph:
    """The table as resting states, each with its possible moves (guards aside)."""

    def __init__(self, table: StateTable) -> None:
        self.table = table
        self.resting = table.resting_states
        own: dict[tuple[str, str], list[Transition]] = {}
        for edge in table.edges():
            own.setdefault((edge.source, edge.trigger), []).append(edge)
        self._own = own

    def edges_from(self, state: str, trigger: str) -> list[Transition]:
        """The edges the machine tries for ``trigger`` in ``state``: its own, then its
        ancestors', innermost first."""
        return [e for s in reversed(self.table.path(state))
                for e in self._own.get((s, trigger), ())]

    def targets(self, edge: Transition, source: str) -> set[str]:
        """The resting states ``edge`` can lead to from ``source``."""
        if edge.dest is None:
            return {source}
        entries = {self.table.entry(edge.dest)}
        if edge.history:
            entries |= {self.table.entry(c) for c in self.table.children(edge.dest)}
        return entries

    def moves(self, state: str, *, skip: Iterable[str] = ()) -> set[tuple[str, str]]:
        """``(trigger, next resting state)`` for every edge that can fire in ``state``."""
        skipped = set(skip)
        out: set[tuple[str, str]] = set()
        for trigger in self.table.all_triggers:
            if trigger in skipped:
                continue
            for edge in self.edges_from(state, trigger):
                out |= {(trigger, t) for t in self.targets(edge, state)}
                if not edge.requires:  # an unguarded edge always fires: none after it is tried
                    break
        return out

    def reachable(self, start: Iterable[str], *, skip: Iterable[str] = ()) -> set[str]:
        skipped = tuple(skip)
        seen = set(start)
        todo = deque(seen)
        while todo:
            for _, nxt in self.moves(todo.popleft(), skip=skipped):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def inside(self, resting: Iterable[str], state: str) -> bool:
        return any(state in self.table.path(r) for r in resting)


def check_table(table: StateTable) -> CheckReport:
    """Run every check on ``table``."""
    graph = TableGraph(table)
    problems: list[str] = []
    verified: list[str] = [_summary(table)]
    for check in (_back_to_listening, _reachable, _ambiguous, _interruptible, _timed,
                  _unused_triggers):
        found, ok = check(graph)
        problems += found
        if not found:
            verified.append(ok)
    verified.append("every trigger, state and condition is known")
    return CheckReport(table.name, tuple(problems), tuple(verified) if not problems else ())


def _summary(table: StateTable) -> str:
    edges = table.edges()
    sub = sum(1 for s in table.states if s.parent is not None)
    timed = sum(1 for e in table.transitions if e.after_ms is not None)
    history = sum(1 for e in table.transitions if e.history)
    return (f"table {table.name!r}: {len(table.states)} states ({sub} sub-states), "
            f"{len(edges)} edges ({len(table.transitions)} written, {timed} timed, "
            f"{history} into history), triggers of the program's: {len(table.triggers)}")


def _back_to_listening(graph: TableGraph) -> tuple[list[str], str]:
    found = []
    for state in graph.resting:
        back = graph.reachable([state], skip=LEAVE_TRIGGERS)
        if not graph.inside(back, LISTENING):
            found.append(f"state {state!r} cannot return to listening without a disconnect "
                         "or a stop")
    return found, "every state can return to listening without a disconnect or a stop"


def _reachable(graph: TableGraph) -> tuple[list[str], str]:
    table = graph.table
    seen = graph.reachable([table.entry(table.initial)])
    found = [f"state {s!r} cannot be reached from {table.initial!r}"
             for s in table.state_names if not graph.inside(seen, s)]
    return found, f"every state is reachable from {table.initial!r}"


def _literal(guard: tuple[str, bool]) -> str:
    return guard[0] if guard[1] else f"not {guard[0]}"


def _describe(edge: Transition) -> str:
    guards = ", ".join(sorted(_literal(g) for g in edge.requires))
    dest = "stay" if edge.dest is None else edge.dest
    return f"-> {dest}" + (f" [{guards}]" if guards else "")


def _ambiguous(graph: TableGraph) -> tuple[list[str], str]:
    groups: dict[tuple[str, str], list[Transition]] = {}
    for edge in graph.table.edges():
        groups.setdefault((edge.trigger, edge.source), []).append(edge)
    found = []
    for (trigger, source), edges in groups.items():
        for first, later in combinations(edges, 2):
            a, b = first.requires, later.requires
            if a <= b:
                found.append(f"edge {trigger!r} out of {source!r} {_describe(later)} can never "
                             f"fire: the edge before it ({_describe(first)}) always does first")
            elif not b <= a and not any((c, not v) in a for c, v in b):
                both = ", ".join(sorted(_literal(g) for g in a | b))
                found.append(f"edges {trigger!r} out of {source!r} {_describe(first)} and "
                             f"{_describe(later)} can both fire (when {both}); make their "
                             "guards exclusive")
    return found, "no two edges of one trigger and source can both fire, and none is dead"


def _interruptible(graph: TableGraph) -> tuple[list[str], str]:
    found = []
    names = []
    for state in graph.resting:
        if not graph.table.interruptible(state):
            continue
        names.append(state)
        firsts = {nxt for trigger in BARGE_IN_TRIGGERS
                  for edge in graph.edges_from(state, trigger)
                  for nxt in graph.targets(edge, state) if nxt != state}
        if not graph.inside(graph.reachable(firsts, skip=LEAVE_TRIGGERS), INTERRUPTED):
            found.append(f"interruptible state {state!r} has no way into interrupted: no "
                         "barge-in trigger leads there")
    return found, ("every interruptible state has a way into interrupted"
                   + (f" ({', '.join(names)})" if names else ""))


def _timed(graph: TableGraph) -> tuple[list[str], str]:
    table = graph.table
    found = []
    owners = sorted({e.source for e in table.transitions if e.after_ms is not None})
    for owner in owners:
        timers = {t for t, _ in table.timers(owner)}
        if owner in table.path(table.entry(table.initial)):
            found.append(f"timed edge out of {owner!r}: the initial state is never entered, so "
                         "its timer never starts")
            continue
        inner = [r for r in graph.resting if owner in table.path(r)]
        leaves = any(owner not in table.path(nxt) for r in inner
                     for _, nxt in graph.moves(r, skip=(*timers, *LEAVE_TRIGGERS)))
        if not leaves:
            found.append(f"state {owner!r} can be left only by its timed edge: give it an edge "
                         "on an event too")
    return found, ("every timed edge's state can be left otherwise"
                   + (f" ({', '.join(owners)})" if owners else ""))


def _unused_triggers(graph: TableGraph) -> tuple[list[str], str]:
    used = {e.trigger for e in graph.table.transitions}
    found = [f"trigger {t!r} is declared but no edge uses it"
             for t in graph.table.triggers if t not in used]
    return found, "every trigger the table declares is used"
