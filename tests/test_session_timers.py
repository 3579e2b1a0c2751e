"""Timed edges in a session: the session runs the core's timers on its clock, here a
``VirtualTime``, so the confirm window of ``examples.machines.confirm`` is exact to the
millisecond; a timer the core cancels never fires, and closing ends every timer."""

from __future__ import annotations

import asyncio

from bargein import Conversation
from bargein.core import commands as c
from bargein.core import events as e
from bargein.testing import deltas
from examples.machines import CONFIRM
from tests.test_session_memory import running


async def test_the_confirm_window_commits_on_the_sessions_clock() -> None:
    async with running(conversation=Conversation(CONFIRM)) as rig:
        await rig.server.emit(e.SessionReady(interrupt_response=True), e.ResponseCreated("r1"),
                              *deltas("r1", "i1", 3000))
        await rig.time.advance(500)
        rig.session.handle(e.LocalSpeechStarted(rig.time.ms))
        assert rig.session.conversation.state == "confirming"
        assert rig.session.conversation.timers == {"after_600ms@confirming"}
        await rig.time.advance(590)
        assert rig.session.conversation.state == "confirming"
        assert rig.server.commands(c.CancelResponse) == []
        await rig.time.advance(10)
        assert rig.session.conversation.state == "listening"   # committed, flushed
        (cancel,) = rig.server.commands(c.CancelResponse)
        (truncate,) = rig.server.commands(c.TruncateItem)
    assert cancel.response_id == "r1"
    # 1100 ms played (500 before the onset, 600 while judging), the block and the fade
    assert truncate.audio_end_ms == 1100 + 10 + 5
    (barge,) = rig.interrupted()
    assert barge.trigger == "after_600ms@confirming"


async def test_a_cancelled_timer_never_fires_and_close_ends_the_running_ones() -> None:
    async with running(conversation=Conversation(CONFIRM)) as rig:
        await rig.server.emit(e.SessionReady(), e.ResponseCreated("r1"),
                              *deltas("r1", "i1", 3000))
        await rig.time.advance(200)
        rig.session.handle(e.LocalSpeechStarted(rig.time.ms))
        await rig.time.advance(300)
        rig.session.handle(e.LocalSpeechStopped())
        assert rig.session.conversation.state == "speaking"
        await rig.time.advance(1000)
        assert rig.session.conversation.state == "speaking", "the window's timer was cancelled"
        assert rig.session.conversation.stats.stale_timers == 0
        rig.session.handle(e.LocalSpeechStarted(rig.time.ms))
        timers = [t for t in asyncio.all_tasks() if t.get_name().startswith("bargein-timer-")]
        assert len(timers) == 1
    await asyncio.sleep(0)
    assert all(t.done() for t in timers), "closing the session ends its timers"
    assert rig.server.commands(c.TruncateItem) == []
