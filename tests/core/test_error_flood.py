"""Bounded noise (issue 15): a server refusing every append (an error per 20 ms) logged 402
ERROR lines in 9 s; a flood of one error is now its first line, then one line per 5 s
saying how many were held back (``bargein.logs.Repeats``)."""

from __future__ import annotations

from bargein.core import Conversation
from bargein.core import events as e
from bargein.core.conversation import ERROR_SUMMARY_S
from bargein.logs import Repeats
from bargein.testing import capture_logs


class Clock:
    def __init__(self) -> None:
        self.s = 0.0

    def __call__(self) -> float:
        return self.s


def refused(n: int) -> e.ServerError:
    return e.ServerError("invalid_request_error", "invalid_value", "audio refused",
                         f"evt_{n}")


def test_a_flood_of_one_error_is_its_first_line_then_one_summary_per_window() -> None:
    clock = Clock()
    conv = Conversation()
    conv.repeats = Repeats(ERROR_SUMMARY_S, clock=clock)
    conv.handle(e.SessionReady())
    with capture_logs() as logs:
        for n in range(450):  # 9 s of an error every 20 ms
            clock.s = n / 50
            conv.handle(refused(n))
    lines = [x for x in logs if x["event"] == "server_error"]
    assert len(lines) == 2, [x.get("repeated") for x in lines]
    first, summary = lines
    assert "repeated" not in first and first["code"] == "invalid_value"
    assert summary["repeated"] == 249 and summary["in_s"] == ERROR_SUMMARY_S
    assert conv.stats.server_errors == 450, "every one is still counted"


def test_different_errors_each_get_their_line() -> None:
    clock = Clock()
    conv = Conversation()
    conv.repeats = Repeats(ERROR_SUMMARY_S, clock=clock)
    with capture_logs() as logs:
        conv.handle(refused(1))
        conv.handle(e.ServerError("server_error", "", "boom", ""))
        conv.handle(e.ProtocolViolation("a binary frame"))
        conv.handle(refused(2))
        conv.handle(e.ProtocolViolation("a binary frame"))
    assert [x["event"] for x in logs if x["log_level"] == "error"] == [
        "server_error", "server_error", "protocol_violation"]


def test_a_lull_longer_than_the_window_writes_the_next_one_with_the_count() -> None:
    clock = Clock()
    repeats = Repeats(5.0, clock=clock)
    assert repeats.seen("k") == (True, 0)
    assert repeats.seen("k") == (False, 0)
    clock.s = 60.0
    assert repeats.seen("k") == (True, 1)
    assert repeats.seen("k") == (False, 0)


def test_repeats_remembers_a_bounded_number_of_keys() -> None:
    repeats = Repeats(5.0, clock=Clock(), max_keys=3)
    for key in range(10):
        assert repeats.seen(key) == (True, 0)
    assert repeats.seen(9) == (False, 0)
    assert repeats.seen(0) == (True, 0), "the oldest was forgotten"
