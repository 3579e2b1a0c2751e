"""Generated tests for any state table: event sequences that reach every state and fire
every edge, run against the core with its promises checked.

One line in an extender's test suite covers their machine::

    from bargein.testing import machine_tests
    test_my_machine = machine_tests(MY_TABLE)

How. ``explore(table)`` runs a breadth-first search over what the conversation core
really does: from a fresh ``Conversation(table)``, every event the world may send next
(``bargein.testing.world``: the server's events, the speaker's reports, the program's
pauses, interrupts and own events, the timers the core started) is fed, and each new
configuration is kept: the machine's state and history, the running timers, the facts the
guards ask about, and what of the world decides what comes next. One conversation is
explored by ``snapshot()`` and ``restore()``, so nothing is rebuilt. Breadth first, the
first sequence that fires an edge is a shortest one: ``paths`` holds one per edge fired
(and one per state reached, for the states no edge enters). Every step checks the
world's promises (no stale audio, truncation within what was received, well-formed
cancels, truncates and timers); the finished graph shows the configurations from which
``listening`` cannot be reached without a disconnect or a stop (stuck).

``check_machine(table)`` then replays each path on a fresh conversation, checking the
promises again and that the path's last event fired its edge, and fails with one line per
problem: a broken promise (with the sequence that broke it), a stuck configuration, an
edge no sequence could fire (its guards never held), a state never reached.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bargein.core import Conversation
from bargein.core import events as e
from bargein.states.machine import Step
from bargein.states.names import LEAVE_TRIGGERS, LISTENING
from bargein.states.table import StateTable, Transition
from bargein.testing.world import UserEvents, World

MAX_CONFIGURATIONS = 20_000
_LEAVING = (e.Disconnected, e.UserStop)
assert len(_LEAVING) == len(LEAVE_TRIGGERS)


@dataclass(frozen=True, slots=True)
class EventPath:
    """A generated test: the events, and what the last one must do (``goal``)."""

    goal: str
    labels: tuple[str, ...]
    events: tuple[e.Event, ...]
    edge: Transition | None = None

    def __str__(self) -> str:
        return f"{self.goal}: {' -> '.join(self.labels) or '(no event)'}"


@dataclass
class Exploration:
    """What ``explore`` found."""

    table: StateTable
    paths: list[EventPath] = field(default_factory=list)
    unfired: list[Transition] = field(default_factory=list)
    unreached: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    configurations: int = 0
    events_fed: int = 0

    @property
    def problems(self) -> list[str]:
        return [
            *self.broken,
            *self.stuck,
            *(f"edge {_edge(x)} was never fired by any sequence (its guards never held)"
              for x in self.unfired),
            *(f"state {s!r} was never reached" for s in self.unreached),
        ]


def _edge(edge: Transition) -> str:
    dest = "stay" if edge.dest is None else edge.dest
    guards = [*edge.conditions, *(f"not {u}" for u in edge.unless)]
    guard = f" [{', '.join(guards)}]" if guards else ""
    return f"{edge.source} --{edge.trigger}{guard}--> {dest}"


class _Node:
    __slots__ = ("events", "labels", "snapshot", "state", "world")

    def __init__(self, labels: tuple[str, ...], events: tuple[e.Event, ...],
                 conversation: Conversation, world: World) -> None:
        self.labels, self.events = labels, events
        self.snapshot = conversation.snapshot()
        self.world = world.copy()
        self.state = conversation.state


def _key(conversation: Conversation, world: World) -> tuple[object, ...]:
    facts = conversation.facts
    return (conversation.machine.snapshot(), conversation.timers, facts.playing,
            bool(facts.generating), facts.connected, facts.paused,
            conversation.held_audio_ms > 0, world.key())


def explore(table: StateTable, *, user_events: UserEvents | None = None,
            limit: int = MAX_CONFIGURATIONS) -> Exploration:
    """Search what the core does with ``table``; see the module's docstring."""
    out = Exploration(table)
    conversation = Conversation(table)
    fired: list[Step] = []
    conversation.machine.listener = fired.append
    start_world = World(table.triggers, dict(user_events or {}))
    nodes = [_Node((), (), conversation, start_world)]
    index = {_key(conversation, start_world): 0}
    graph: list[set[tuple[int, bool]]] = [set()]
    first_edge: dict[Transition, EventPath] = {}
    first_state: dict[str, EventPath] = {conversation.state: EventPath(
        f"rest in {conversation.state}", (), ())}
    todo = deque([0])
    while todo and len(nodes) < limit:
        n = todo.popleft()
        node = nodes[n]
        for label, event in node.world.alphabet():
            conversation.restore(node.snapshot)
            world = node.world.copy()
            fired.clear()
            _, broken = world.feed(conversation, event)
            out.events_fed += 1
            labels, events = (*node.labels, label), (*node.events, event)
            for problem in broken:
                out.broken.append(f"{problem}, after: {' -> '.join(labels)}")
            for step in fired:
                if step.edge not in first_edge:
                    first_edge[step.edge] = EventPath(f"fire {_edge(step.edge)}", labels,
                                                      events, step.edge)
            state = conversation.state
            if state not in first_state:
                first_state[state] = EventPath(f"rest in {state}", labels, events)
            key = _key(conversation, world)
            m = index.get(key)
            if m is None:
                m = index[key] = len(nodes)
                nodes.append(_Node(labels, events, conversation, world))
                graph.append(set())
                todo.append(m)
            graph[n].add((m, isinstance(event, _LEAVING)))
    out.configurations = len(nodes)
    if todo:
        out.broken.append(f"exploration stopped at {limit} configurations")
    out.stuck = _stuck(table, nodes, graph)
    entered = {x.dest for x in first_edge if x.dest is not None}
    out.paths = list(first_edge.values()) + [p for s, p in first_state.items()
                                            if s not in entered and p.events]
    out.unfired = [x for x in table.edges() if x not in first_edge]
    out.unreached = [s for s in table.resting_states if s not in first_state]
    out.broken = _first_of_each(out.broken)
    return out


def _first_of_each(problems: list[str]) -> list[str]:
    """One line per distinct problem: the first found (by a shortest sequence)."""
    seen: dict[str, str] = {}
    for line in problems:
        seen.setdefault(line.split(", after: ")[0].split(" (")[0], line)
    return list(seen.values())


def _stuck(table: StateTable, nodes: list[_Node], graph: list[set[tuple[int, bool]]]) -> list[str]:
    """Configurations from which no sequence without a disconnect or a stop reaches
    ``listening`` (one line per state, with the shortest way in)."""
    back: list[list[int]] = [[] for _ in nodes]
    for n, edges in enumerate(graph):
        for m, leaving in edges:
            if not leaving:
                back[m].append(n)
    good = {n for n, node in enumerate(nodes) if LISTENING in table.path(node.state)}
    todo = deque(good)
    while todo:
        for n in back[todo.popleft()]:
            if n not in good:
                good.add(n)
                todo.append(n)
    out: dict[str, str] = {}
    for n, node in enumerate(nodes):
        if n not in good and node.state not in out:
            out[node.state] = (f"stuck in {node.state!r}: listening cannot be reached without "
                               f"a disconnect or a stop, after: {' -> '.join(node.labels)}")
    return list(out.values())


def replay(table: StateTable, path: EventPath) -> list[str]:
    """Feed ``path`` to a fresh conversation; the promises broken, and whether the last
    event fired the path's edge."""
    conversation = Conversation(table)
    fired: list[Step] = []
    conversation.machine.listener = fired.append
    world = World(table.triggers)
    problems: list[str] = []
    for event in path.events:
        fired.clear()
        problems += world.feed(conversation, event)[1]
    if path.edge is not None and path.edge not in [s.edge for s in fired]:
        problems.append(f"its last event did not fire {_edge(path.edge)}")
    return [f"{p} ({path})" for p in problems]


def run_generated(table: StateTable, *, user_events: UserEvents | None = None
                  ) -> tuple[Exploration, list[str]]:
    """Explore ``table`` and replay every path: the exploration and every problem."""
    found = explore(table, user_events=user_events)
    problems = found.problems
    for path in found.paths:
        problems += replay(table, path)
    return found, _first_of_each(problems)


def verify(table: StateTable) -> tuple[bool, list[str]]:
    """``bargein check``: the static checks (``bargein.states.check``) and the generated
    tests; whether all passed, and the lines to print (``problem: ...`` / ``ok: ...``)."""
    from bargein.states.check import check_table

    report = check_table(table)
    found, problems = run_generated(table)
    lines = report.lines() + [f"problem: {p}" for p in problems]
    if not problems:
        lines.append(
            f"ok: generated tests: all {len(table.edges())} edges fired and all "
            f"{len(table.resting_states)} states reached by {len(found.paths)} shortest event "
            f"sequences ({found.configurations} configurations, {found.events_fed} events "
            "explored); the core's promises held at every step")
    return report.ok and not problems, lines


def check_machine(table: StateTable, *, user_events: UserEvents | None = None) -> Exploration:
    """Explore ``table``, replay every path; raise ``AssertionError`` listing every problem.
    Returns the exploration (its ``paths``, ``configurations``) when there is none."""
    found, problems = run_generated(table, user_events=user_events)
    if problems:
        raise AssertionError(
            f"state table {table.name!r}: {len(problems)} problem(s)\n" + "\n".join(problems))
    return found


def machine_tests(table: StateTable, *, user_events: Mapping[str, Callable[[], e.UserEvent]]
                  | None = None) -> Callable[[], None]:
    """A pytest test (``test_my_machine = machine_tests(MY_TABLE)``) that runs
    ``check_machine(table)``: every state reached, every edge fired, the promises kept."""

    def test() -> None:
        check_machine(table, user_events=user_events)

    test.__name__ = test.__qualname__ = f"test_machine_{table.name}"
    test.__doc__ = f"Generated tests of state table {table.name!r} (bargein.testing)."
    return test
