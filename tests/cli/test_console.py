"""The terminal's live timeline: the assistant's text with the cut marked, who cancelled,
a reconnection in one line."""

from __future__ import annotations

import io

from bargein.cli.console import LivePrinter, figures_table
from bargein.core.ledger import Settlement
from bargein.session import (
    Closed,
    Heard,
    Interrupted,
    Observation,
    Reconnected,
    ResponseFigures,
    StateChanged,
    Transcript,
)


def printed(*observations: Observation) -> list[str]:
    out = io.StringIO()
    printer = LivePrinter(out)
    for obs in observations:
        printer(obs)
    return [line.split("s  ", 1)[1] for line in out.getvalue().splitlines()]


CUT = Settlement("item_1", "resp_1", 2000.0, 1000.0, "truncate", 1000)


def barge_in(cancelled_by: str, cancelled: tuple[str, ...] = ()) -> list[Observation]:
    return [
        StateChanged(0, "listening", "responding", "response_created", "response created"),
        Transcript(10, "assistant", "item_1", "one two", response_id="resp_1"),
        Transcript(20, "assistant", "item_1", " three four", response_id="resp_1"),
        StateChanged(900, "responding", "interrupted", "speech_started", "barge-in"),
        StateChanged(900, "interrupted", "listening", "playback_flushed", "flushed"),
        Interrupted(900, "speech_started", 15.0, cancelled, (CUT,),
                    cancelled_by),  # type: ignore[arg-type]
        Heard(900, "item_1", "resp_1", "one two ", "three four", 1000.0, 2000.0),
        Transcript(950, "assistant", "item_1", "one two three four", final=True,
                   response_id="resp_1"),
        Closed(2000, "input over"),
    ]


def test_a_cut_reply_is_printed_once_with_the_cut_marked() -> None:
    lines = printed(*barge_in("server"))
    said = [line for line in lines if line.startswith("assistant")]
    assert said == ['assistant, cut off after 1000 of 2000 ms (heard ‖ not heard): '
                    '"one two ‖ three four"']
    assert lines.index(said[0]) == lines.index(next(x for x in lines if "BARGE-IN" in x)) + 1


def test_the_barge_in_line_says_who_cancelled() -> None:
    def line(cancelled_by: str, cancelled: tuple[str, ...] = ()) -> str:
        return next(x for x in printed(*barge_in(cancelled_by, cancelled)) if "BARGE-IN" in x)

    assert line("client", ("resp_1",)).endswith("bargein sent response.cancel for resp_1")
    assert line("server").endswith("the server cancels the response itself (interrupt_response)")
    assert line("none").endswith("the response had finished generating: nothing to cancel")
    assert "speaker silent after 15.0 ms; item_1: truncate at 1000 ms" in line("server")


def test_a_whole_reply_is_printed_at_the_end_of_its_turn_and_a_user_line_at_once() -> None:
    lines = printed(
        Transcript(5, "user", "item_u", "hello", final=True),
        StateChanged(10, "listening", "responding", "response_created", "response created"),
        Transcript(20, "assistant", "item_1", "Hi", response_id="resp_1"),
        Transcript(30, "assistant", "item_1", " there.", response_id="resp_1"),
        Transcript(40, "assistant", "item_1", "Hi there.", final=True, response_id="resp_1"),
        StateChanged(900, "responding", "listening", "playback_finished", "played"),
    )
    assert lines == ['user: "hello"', "listening -> responding  (response_created: response "
                     'created)', 'assistant: "Hi there."',
                     "responding -> listening  (playback_finished: played)"]


def test_a_reconnection_is_one_line() -> None:
    (line,) = printed(Reconnected(100, "connection dropped", 0.4, 1, True, True))
    assert line == ("RECONNECTED after 0.4 s (connection dropped); the server's context was "
                    "lost: it no longer knows what was said; session settings sent again")


def test_the_figures_table_says_who_cancelled() -> None:
    table = figures_table([
        ResponseFigures("resp_1", 600.0, True, 15.0, 1000.0, 1000, 500.0, ["i"], 2000.0,
                        "cancelled", True),
        ResponseFigures("resp_2", 600.0, False, None, 3000.0, None, 0.0, ["j"], 3000.0,
                        "completed"),
    ])
    first, second = table.splitlines()[1:]
    assert first.split()[-1] == "bargein" and second.split()[-1] == "-"
    assert "2000 ms" in first and "15.0 ms" in first
