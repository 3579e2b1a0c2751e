"""Tools (``bargein.tools``): a function's schema from its type hints, and how a call runs:
its output, a function that raises, hangs or gets bad arguments."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import pytest

from bargein.errors import ToolError
from bargein.testing import capture_logs
from bargein.tools import Tool, tool, tools_from


def weather(city: str, days: int = 1, unit: Literal["c", "f"] = "c",
            hourly: bool | None = None, stops: list[str] | None = None) -> dict[str, object]:
    """The forecast for a city.

    More words that stay out of the description."""
    return {"city": city, "days": days, "unit": unit}


async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "late"


def broken() -> str:
    raise RuntimeError("the backend is down")


def test_the_schema_comes_from_the_type_hints_and_the_docstring() -> None:
    made = tool(weather, on_barge_in="finish")
    assert (made.name, made.description) == ("weather", "The forecast for a city.")
    assert made.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "hourly": {"type": "boolean"},
            "stops": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city"],
    }
    assert made.spec.to_wire() == {"type": "function", "name": "weather",
                                   "description": made.description,
                                   "parameters": made.parameters}
    assert made.spec.on_barge_in == "finish"


@pytest.mark.parametrize(("fn", "fragment"), [
    (lambda x: x, "has no type hint"),
    (lambda *args: 1, "passable by name"),
])
def test_a_function_without_a_schema_is_refused_in_one_line(fn: object, fragment: str) -> None:
    with pytest.raises(ToolError, match=fragment):
        tool(fn, name="f")  # type: ignore[arg-type]


def test_unsupported_types_bad_names_and_twins_are_refused() -> None:
    def takes_a_set(s: set[int]) -> None: ...

    with pytest.raises(ToolError, match="no JSON schema"):
        tool(takes_a_set)
    with pytest.raises(ToolError, match="name"):
        tool(weather, name="the weather")
    with pytest.raises(ToolError, match="on_barge_in"):
        tool(weather, on_barge_in="later")  # type: ignore[arg-type]
    with pytest.raises(ToolError, match="two tools are named weather"):
        tools_from([weather, tool(weather)])
    explicit = tool(takes_a_set, parameters={"type": "object", "properties": {}})
    assert isinstance(explicit, Tool) and explicit.parameters["properties"] == {}


async def test_a_call_returns_json_or_the_text_itself() -> None:
    assert json.loads(await tool(weather).run('{"city": "Oslo"}')) == {
        "city": "Oslo", "days": 1, "unit": "c"}
    assert await tool(slow).run('{"seconds": 0}') == "late"


async def test_a_function_that_raises_hangs_or_gets_bad_arguments_answers_an_error() -> None:
    with capture_logs() as logs:
        raised = json.loads(await tool(broken).run("{}"))
        hung = json.loads(await tool(slow, timeout_s=0.05).run('{"seconds": 30}'))
        bad_json = json.loads(await tool(weather).run("{city"))
        wrong = json.loads(await tool(weather).run('{"town": "Oslo"}'))
    assert raised == {"error": "broken failed: RuntimeError: the backend is down"}
    assert hung == {"error": "slow failed: no result within 0.05 s"}
    assert "not valid JSON" in bad_json["error"] and "town" in wrong["error"]
    assert [(x["event"], x["why"]) for x in logs] == [
        ("tool_failed", "raised"), ("tool_failed", "timed_out"),
        ("tool_failed", "bad_arguments"), ("tool_failed", "bad_arguments")]


async def test_a_sync_function_that_hangs_is_abandoned_on_a_daemon_thread() -> None:
    import threading

    release = threading.Event()

    def stuck() -> str:
        release.wait(30)
        return "too late"

    output = json.loads(await tool(stuck, timeout_s=0.05).run("{}"))
    assert output == {"error": "stuck failed: no result within 0.05 s"}
    (thread,) = [t for t in threading.enumerate() if t.name == "bargein-tool-stuck"]
    assert thread.daemon  # it can never hold the program's exit
    release.set()
