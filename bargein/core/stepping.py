"""How ``Conversation`` drives its machine: one step, what the step asks for, and the
program's own events and timers (``bargein.core.actions`` explains the order and why).

``Conversation`` inherits this; it lives apart so that the conversation module keeps to the
barge-in and the server's events. Everything here is sans-IO like the rest of the core.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, NamedTuple

from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.actions import ActionContext, MicGate, run_actions
from bargein.core.liveness import LIVENESS_TIMERS
from bargein.core.reconcile import SentCommands
from bargein.core.records import ConversationStats, Observer, TransitionRecord
from bargein.errors import StateTableError
from bargein.logs import get_logger
from bargein.states.machine import MachineSnapshot, Step, TableMachine
from bargein.states.names import DUCKED, RESPONDING
from bargein.states.table import INTERRUPTED, Action, StateTable

log = get_logger("bargein.core.conversation")

_KEPT = (c.CancelResponse, c.TruncateItem, c.DeleteItem)
"""Commands the reconciler keeps (``SentCommands.keep``) to recognise the server's answers."""


class Facts(NamedTuple):
    """The facts the guards ask about (``bargein.states.CONDITIONS``)."""

    playing: bool
    generating: tuple[str, ...]
    connected: bool
    paused: bool


class MachineDriver:
    """The machine-stepping half of ``Conversation``."""

    table: StateTable
    stats: ConversationStats
    _machine: TableMachine
    _observers: list[Observer]
    _generating: set[str]
    _playing: bool
    _connected: bool
    _paused: bool
    _sent: SentCommands
    _timers: set[str]
    _state_timers: dict[str, tuple[tuple[str, int], ...]]
    _plain: frozenset[str]
    """States with no timer and no entry or exit action: nothing to do entering them."""
    _quiet: frozenset[str]
    """Plain states that send the user's speech, ``interrupted`` aside: a step between
    them asks for nothing but its edge's actions."""
    _mic: MicGate

    @property
    def state(self) -> str:
        """The innermost state the machine is in."""
        return self._machine.state

    def _interrupt(self, trigger: str) -> list[c.Command]:
        raise NotImplementedError

    def _event_id(self) -> str:
        raise NotImplementedError

    @property
    def machine(self) -> TableMachine:
        """The table's machine (``active()``, ``legal()``, ``history``)."""
        return self._machine

    def in_state(self, name: str) -> bool:
        """Whether the machine is in ``name`` or in one of its sub-states."""
        return self._machine.active(name)

    @property
    def facts(self) -> Facts:
        """What the guards ask about, now."""
        return Facts(self._playing, tuple(sorted(self._generating)), self._connected,
                     self._paused)

    @property
    def held_audio_ms(self) -> float:
        """User audio held by a ``hold`` state, to be sent when it is left."""
        return self._mic.held_ms

    @property
    def timers(self) -> frozenset[str]:
        """The table's timers the core has started and is waiting for (its liveness
        deadlines, ``bargein.core.liveness``, aside)."""
        return frozenset(self._timers - LIVENESS_TIMERS)

    def snapshot(self) -> ConversationSnapshot:
        """A copy of everything the conversation knows, to ``restore()`` later (the
        generated tests explore from one conversation this way). Observers are not part
        of it."""
        data = {k: copy.deepcopy(v) for k, v in vars(self).items() if k not in _SHARED}
        return ConversationSnapshot(self._machine.snapshot(), data)

    def restore(self, snapshot: ConversationSnapshot) -> None:
        """Put the conversation back as it was when ``snapshot`` was taken."""
        for k, v in snapshot.data.items():
            setattr(self, k, copy.deepcopy(v))
        self._machine.restore(snapshot.machine)

    # --- one step -------------------------------------------------------------------

    def _fire(self, trigger: str, event: e.Event | None = None) -> list[c.Command]:
        """Fire ``trigger``, report the edge that fired to the log and the observers, and
        return what the step asks for (``_effects``). An illegal trigger is logged and
        counted, never raised; nothing then, nor when every guarded edge refused."""
        machine = self._machine
        if not machine.legal(trigger):
            self.stats.illegal_events += 1
            log.warning("illegal_event", state=machine.state, trigger=trigger)
            return []
        step = machine.step(trigger)
        if step is None:
            return []
        edge, source, dest = step.edge, step.source, step.dest
        if dest != source or edge.reason:
            if log.enabled("info"):  # its fields cost to build: only when it is wanted
                log.info("transition", source=source, dest=dest, trigger=trigger,
                         reason=edge.reason, responses=sorted(self._generating))
            if self._observers:
                record = TransitionRecord(source, dest, trigger, edge.reason)
                for observer in list(self._observers):
                    try:
                        observer(record)
                    except Exception:  # an observer's bug must not break the conversation
                        log.exception("observer_failed", observer=repr(observer))
        quiet = self._quiet
        if edge.actions or not quiet.issuperset(step.entered) \
                or not quiet.issuperset(step.exited):
            return self._effects(step, event)
        return []

    def _effects(self, step: Step, event: e.Event | None) -> list[c.Command]:
        """The barge-in on entering ``interrupted``, then timers, actions and held speech
        in statechart order (see ``bargein.core.actions``)."""
        commands: list[c.Command] = []
        if INTERRUPTED in step.entered:
            commands += self._interrupt(step.edge.trigger)
        elif DUCKED in step.exited and self._machine.active(RESPONDING):
            self.stats.false_interruptions += 1  # judged, not confirmed: the reply goes on
            log.info("false_interruption", trigger=step.edge.trigger, state=step.dest)
        table, plain, timers = self.table, self._plain, self._timers
        for name in step.exited:
            if name in plain:
                continue
            for timer, _ in self._state_timers[name]:
                if timer in timers:
                    timers.discard(timer)
                    commands.append(c.CancelTimer(timer))
            actions = table.state(name).on_exit
            if actions:
                commands += self._act(actions, step, name, event)
        if step.edge.actions:
            commands += self._act(step.edge.actions, step, None, event)
        for name in step.entered:
            if name in plain:
                continue
            actions = table.state(name).on_enter
            if actions:
                commands += self._act(actions, step, name, event)
            for timer, ms in self._state_timers[name]:
                timers.add(timer)
                commands.append(c.StartTimer(timer, ms))
        if step.entered:
            commands += self._mic.enter(step.dest)
        return commands

    def _act(self, actions: tuple[Action, ...], step: Step, state: str | None,
             event: e.Event | None) -> list[c.Command]:
        context = ActionContext(step.edge.trigger, step.source, step.dest, state, event,
                                self._playing, tuple(sorted(self._generating)), self._connected,
                                self._paused)  # ``facts``, without building the named tuple
        commands = run_actions(actions, context, self.stats, self._event_id)
        for command in commands:
            if isinstance(command, _KEPT):
                self._sent.keep(command)
            elif isinstance(command, c.StartTimer):
                self._timers.add(command.name)
            elif isinstance(command, c.CancelTimer):
                self._timers.discard(command.name)
        return commands

    # --- the program's events and timers -----------------------------------------------

    def _on_user_event(self, ev: e.UserEvent) -> list[c.Command]:
        trigger = ev.trigger
        if trigger not in self.table.triggers:
            raise StateTableError(
                f"{type(ev).__name__} fires {trigger!r}, which state table {self.table.name!r} "
                "does not declare (StateTable.triggers)"
            )
        return self._fire(trigger, ev)

    def _on_timer(self, ev: e.TimerFired) -> list[c.Command]:
        if ev.name not in self._timers:
            self.stats.stale_timers += 1
            log.debug("stale_timer", name=ev.name, state=self.state)
            return []
        self._timers.discard(ev.name)
        return self._fire(ev.name, ev)


@dataclass(frozen=True, slots=True)
class ConversationSnapshot:
    """What ``Conversation.snapshot()`` keeps: the machine's place and history, and a deep
    copy of every other attribute of the conversation."""

    machine: MachineSnapshot
    data: dict[str, Any]


_SHARED = frozenset({"table", "_machine", "_dispatch", "_observers", "_state_timers", "_plain",
                     "_quiet"})
"""Attributes a snapshot leaves alone: the table and what is built from it, the observers."""

