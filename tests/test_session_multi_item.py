"""A reply of several spoken items, cut in its second: over the simulator, each item is
settled on its own: the first, heard whole, is kept whole; the second is truncated to what
the speaker played of it; none is deleted, and the server refuses nothing (but a cancel that
crossed the reply's own end, which the core reconciles)."""

from __future__ import annotations

import pytest

from bargein.adapters.session_config import SessionConfig
from bargein.core import events as e
from bargein.sim import Reply
from bargein.states import DEFAULT_TABLE
from tests.support.live import live
from tests.support.sim_support import check_client_events, serving, silence

pytestmark = pytest.mark.e2e


async def test_a_barge_in_in_the_second_item_settles_each_item_on_its_own() -> None:
    script = (Reply(("Two trains today.",
                     "The first leaves at six from platform four, and the second at nine.")),)
    async with serving(script=script, speed=4.0) as sim, \
            live(sim, DEFAULT_TABLE, silence(30000), SessionConfig(turn_detection=None)) as run:
        await run.reach("idle", "listening")
        run.session.handle(e.RequestResponse())

        def heard() -> dict[str, float]:
            return dict(run.session.sink.heard_ms())

        await run.until(lambda: len(heard()) == 2 and min(heard().values()) >= 300)
        run.session.handle(e.UserInterrupt())
        await run.until(lambda: bool(run.interrupted()))
        record = sim.records[0]
        await record.wait_for("conversation.item.truncate")
    first, second = (x["item"]["id"] for x in record.server_events("response.output_item.added"))
    settled = {s.item_id: s for s in run.interrupted()[0].settlements}
    assert settled[second].action == "truncate"
    assert 300 <= settled[second].audio_end_ms < 4000  # what played of it, not all it had
    kept = settled.get(first)  # heard whole: kept, or truncated at its own end
    assert kept is None or kept.action == "keep" or kept.audio_end_ms == kept.received_ms
    truncates = {x["item_id"]: x["audio_end_ms"]
                 for x in record.client_events("conversation.item.truncate")}
    assert truncates[second] == settled[second].audio_end_ms
    assert not record.client_events("conversation.item.delete")
    # a cancel may cross the reply's own response.done: refused, and reconciled as benign
    assert all(x["error"]["code"] == "response_cancel_not_active"
               for x in record.server_events("error"))
    assert run.session.conversation.stats.server_errors == 0
    check_client_events(sim, "ga")
