"""The live inspector: loopback only, the JSON lines it writes and serves, and its page in a
real headless Chromium during a ``bargein talk`` against the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from bargein import Inspector
from bargein.adapters.audio.wav import write_wav
from bargein.core import events as e
from bargein.errors import InspectorError
from bargein.session import Session, StateChanged
from bargein.testing import MemoryServer, MemorySink, MemorySource, VirtualTime, reply
from tests.cli.test_cli import FAKE_KEY, SCRIPT, env
from tests.support.sim_support import serving, silence, tone

pytestmark = pytest.mark.e2e

DEADLINE = 90.0
"""Seconds any one wait may take on a loaded machine before the test fails."""


# --- loopback only ---------------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.com",
                                  "", "127.0.0.1.example.com"])
def test_a_host_that_is_not_loopback_is_refused(host: str) -> None:
    with pytest.raises(InspectorError, match="loopback"):
        Inspector(host=host)


async def test_it_listens_on_loopback_only() -> None:
    for host in ("127.0.0.1", "localhost", "127.0.0.2"):
        async with Inspector(host=host) as inspector:
            assert inspector.host in ("127.0.0.1", "127.0.0.2")
            assert inspector.url == f"http://{inspector.host}:{inspector.port}/"
            status, _, body = await http_get(inspector, "/")
            assert status == 200 and b"bargein inspector" in body


async def test_a_page_elsewhere_cannot_read_it() -> None:
    """A web page on another site that points its own name at 127.0.0.1 (DNS rebinding), or
    opens a WebSocket to it from the browser, is turned away: the transcripts stay here."""
    async with Inspector() as inspector:
        status, _, _ = await http_get(inspector, "/events.jsonl",
                                      host=f"attacker.example:{inspector.port}")
        assert status == 421
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(inspector), origin=Origin("http://attacker.example"),
                               proxy=None):
                pass
        assert refused.value.response.status_code == 403
        async with connect(ws_url(inspector), proxy=None,
                           origin=Origin(f"http://127.0.0.1:{inspector.port}")) as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"


def test_a_bad_port_is_refused() -> None:
    with pytest.raises(InspectorError, match="port"):
        Inspector(port=70000)


# --- the JSON lines --------------------------------------------------------------------

async def test_the_json_lines_carry_each_edge_with_its_reason(tmp_path: Path) -> None:
    """One barge-in on an in-memory server: the file, ``/events.jsonl`` and the WebSocket
    all tell it the same way, edge by edge, with triggers, reasons and figures."""
    path = tmp_path / "run.jsonl"
    time, server = VirtualTime(), MemoryServer()
    session = Session(server.transport, MemorySource(time.clock), MemorySink(time.clock),
                      clock=time.now, sleep=time.sleep)
    async with Inspector(jsonl=path) as inspector:
        inspector.attach(session)
        async with watching(inspector) as live:
            async with session:
                await server.emit(e.SessionReady(interrupt_response=True),
                                  e.SpeechStopped("u0", 0))
                await time.advance(100)
                await server.emit(*reply("resp_1", "item_1", 2000, done=False))
                await time.advance(500)
                await server.emit(e.SpeechStarted("u1", 600))
                await server.emit(e.ResponseDone("resp_1", "cancelled", "turn_detected"))
                await time.advance(300)
            served = [json.loads(line) for line in
                      (await http_get(inspector, "/events.jsonl"))[2].decode().splitlines()]
            streamed = await live.until("closed")
    written = [json.loads(line) for line in path.read_text().splitlines()]

    assert written[0]["type"] == "machine"
    assert written[0]["name"] == "conversation" and written[0]["initial"] == "idle"
    assert {"trigger": "speech_started", "source": "responding", "dest": "interrupted",
            "conditions": [], "unless": [], "reason": "barge-in"} in written[0]["edges"]
    assert [r["seq"] for r in written] == sorted({r["seq"] for r in written})
    moves = [(r["at_ms"], r["source"], r["dest"], r["trigger"], r["reason"])
             for r in written if r["type"] == "state" and not r["internal"]]
    assert moves == [
        (0.0, "idle", "listening", "session_ready", "session ready"),
        (100.0, "listening", "responding", "response_created", "response created"),
        (600.0, "responding", "interrupted", "speech_started", "barge-in"),
        (600.0, "interrupted", "listening", "playback_flushed", "flushed"),
    ]
    (barge,) = [r for r in written if r["type"] == "interrupted"]
    assert barge["trigger"] == "speech_started" and barge["stop_latency_ms"] == 35.0
    (settled,) = barge["settlements"]
    assert (settled["item_id"], settled["action"], settled["audio_end_ms"]) == \
        ("item_1", "truncate", 505)
    figures = [r for r in written if r["type"] == "figures"][-1]["responses"]
    assert [(f["response_id"], f["interrupted"], f["audio_end_ms"]) for f in figures] == \
        [("resp_1", True, 505)]
    assert written[-1]["type"] == "closed"

    # the page's endpoints say the same
    assert [r for r in served if r["type"] == "state"] == \
        [r for r in written if r["type"] == "state"]
    assert [r for r in streamed if r["type"] == "state"] == \
        [r for r in written if r["type"] == "state"]


async def test_a_page_opened_late_gets_the_story_so_far() -> None:
    time, server = VirtualTime(), MemoryServer()
    session = Session(server.transport, MemorySource(time.clock), MemorySink(time.clock),
                      clock=time.now, sleep=time.sleep)
    async with Inspector() as inspector, session:
        inspector.attach(session)
        await server.emit(e.SessionReady(interrupt_response=True))
        await time.advance(100)
        async with watching(inspector) as live:
            snapshot = live.snapshot
    assert snapshot["state"] == "listening"
    assert snapshot["machine"]["digest"] and "<svg" in snapshot["svg"]
    assert [(r["source"], r["dest"]) for r in snapshot["records"] if r["type"] == "state"] == \
        [("idle", "listening")]
    assert snapshot["last_edge"]["trigger"] == "session_ready"


# --- the page, in Chromium, during `bargein talk` --------------------------------------

USER = silence(1000) + tone(600) + silence(6000) + tone(500) + silence(300)
"""A question, then a barge-in over the answer 6 s later: still within it when a loaded
machine makes the answer start seconds late."""
ANSWERS = (" ".join([SCRIPT[0]] * 4), SCRIPT[1])
"""A first answer of about half a minute: a WAV input's clock may leap ahead after the
event loop stalled on a busy machine, and the barge-in must still find it playing."""


async def test_the_page_shows_the_state_changing_in_chromium(tmp_path: Path) -> None:
    chromium = need_chromium()
    wav_in = write_wav(tmp_path / "in.wav", USER)
    jsonl = tmp_path / "inspect.jsonl"
    async with serving(script=ANSWERS, speed=4.0) as sim:
        talk = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bargein", "talk", "--url", sim.url, "--send-key",
            "--input", str(wav_in), "--output", str(tmp_path / "out.wav"), "--linger", "1.5",
            "--inspect", "--inspect-wait", "--inspect-jsonl", str(jsonl),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env(OPENAI_API_KEY=FAKE_KEY))
        try:
            assert talk.stdout is not None
            url = await within(line_with(talk.stdout, "inspector: "), "the inspector's URL")
            url = url.split("inspector: ", 1)[1].split()[0]
            assert url.startswith("http://127.0.0.1:")
            async with browser(chromium, tmp_path / "chromium") as page:
                await page.open(url)
                # moment 1: during the first answer
                first = await page.evaluate("bargeinInspector.when('responding')")
                now = await page.evaluate("bargeinInspector.highlighted()")
                # moment 2: the barge-in went through, back to listening
                back = await page.evaluate(f"bargeinInspector.when('listening', {first + 1})")
                seen = await page.evaluate("bargeinInspector.seen()")
                rows = await page.evaluate(
                    "[...document.querySelectorAll('#events tr')].map(r => r.innerText)")
                html = await page.evaluate("document.documentElement.outerHTML")
                out, err = await within(talk.communicate(), "the end of the conversation")
                ended = await page.evaluate(
                    "new Promise(r => { const s = () => document.getElementById('status')"
                    ".textContent; const t = setInterval(() => { if (/over/.test(s())) "
                    "{ clearInterval(t); r(s()); } }, 50); })")
        except BaseException:
            if talk.returncode is None:
                talk.kill()
            out, err = await talk.communicate()
            print("bargein talk wrote:", out.decode(), err.decode(), sep="\n")  # for the report
            raise

    assert talk.returncode == 0, err.decode()
    assert "BARGE-IN" in out.decode(), out.decode()
    assert seen[first]["highlighted"] == ["responding"], seen
    assert now in (["responding"], ["interrupted"], ["listening"]), now
    barge = [s for s in seen[first:back] if s["state"] == "interrupted"]
    assert barge and barge[0]["highlighted"] == ["interrupted"], seen
    assert barge[0]["edge"] == "responding->interrupted"
    assert seen[back]["highlighted"] == ["listening"] and seen[back]["edge"] == \
        "interrupted->listening", seen
    assert any("responding → interrupted" in r and "speech_started" in r and "barge-in" in r
               for r in rows), rows
    assert any("BARGE-IN" in r and "truncate at" in r for r in rows), rows
    assert "conversation over" in ended
    written = jsonl.read_text()
    assert '"dest":"interrupted"' in written and '"reason":"barge-in"' in written
    assert FAKE_KEY not in html and FAKE_KEY not in written


NESTED_SVG = """<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 100"><g class="graph"><title>x</title>
<g class="cluster"><title>cluster_responding</title><polygon points="0,0 1,1"/></g>
<g class="node"><title>responding_thinking</title><path d="M0,0"/><text>thinking</text></g>
<g class="node"><title>__history_responding</title><ellipse/><text>H</text></g>
<g class="node"><title>listening</title><path d="M0,0"/><text>listening</text></g>
<g class="edge"><title>listening&#45;&gt;responding_thinking</title><path d="M0,0"/></g>
<g class="edge"><title>responding_thinking&#45;&gt;listening</title><path d="M0,0"/></g>
</g></svg>"""
"""A diagram with more than flat states: a cluster for a parent, a child inside it, a history
pseudo-node. The page finds states by their ``<title>``, whatever surrounds them."""


async def test_the_highlight_finds_a_nested_state_among_clusters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chromium = need_chromium()
    monkeypatch.setattr("bargein.inspector.render", lambda table, fmt: NESTED_SVG)
    async with Inspector() as inspector, browser(chromium, tmp_path / "chromium") as page:
        inspector(StateChanged(0.0, "idle", "listening", "session_ready", "session ready"))
        await page.open(inspector.url)
        assert await page.evaluate("bargeinInspector.highlighted()") == ["listening"]
        inspector(StateChanged(5.0, "listening", "responding_thinking", "speech_stopped",
                               "user finished"))
        k = await page.evaluate("bargeinInspector.when('responding_thinking')")
        shown = await page.evaluate(
            "({current: bargeinInspector.highlighted(), parents: [...document.querySelectorAll("
            "'#diagram .current-parent > title')].map(t => t.textContent), edges: [..."
            "document.querySelectorAll('#diagram .last-edge > title')].map(t => t.textContent)})")
    assert k >= 1
    assert shown == {"current": ["responding_thinking"], "parents": ["cluster_responding"],
                     "edges": ["listening->responding_thinking"]}


# --- helpers ---------------------------------------------------------------------------

def need_chromium() -> str:
    """Chromium's path; a failure, not a skip, without it: `make test` installs it."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is not installed, and this test needs a real browser: "
                    "apt-get install chromium (`make test` installs it, through "
                    "scripts/install-system-deps.sh)")
    return chromium


async def within(awaitable: Any, what: str, seconds: float = DEADLINE) -> Any:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        pytest.fail(f"no {what} within {seconds:.0f} s")


async def line_with(stream: asyncio.StreamReader, fragment: str) -> str:
    """The first line of ``stream`` holding ``fragment`` (the rest stays unread)."""
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"the stream ended before a line with {fragment!r}")
        if fragment in line:
            return line


async def http_get(inspector: Inspector, path: str, host: str | None = None
                   ) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(inspector.host, inspector.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{inspector.port}'}\r\n"
                 "Connection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await within(reader.read(), f"answer to GET {path}")
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return int(status_line.split()[1]), headers, body


def ws_url(inspector: Inspector) -> str:
    return f"ws://127.0.0.1:{inspector.port}/ws"


class Live:
    """A WebSocket client of the inspector: its snapshot, then the records as they come."""

    def __init__(self, ws: ClientConnection, snapshot: dict[str, Any]) -> None:
        self.ws, self.snapshot = ws, snapshot
        self.records: list[dict[str, Any]] = []

    async def until(self, kind: str) -> list[dict[str, Any]]:
        while not any(r["type"] == kind for r in self.records):
            self.records.append(json.loads(await within(self.ws.recv(), f"{kind} record")))
        return self.records


@contextlib.asynccontextmanager
async def watching(inspector: Inspector) -> AsyncIterator[Live]:
    async with connect(ws_url(inspector), proxy=None) as ws:
        snapshot = json.loads(await within(ws.recv(), "snapshot"))
        assert snapshot["type"] == "snapshot"
        yield Live(ws, snapshot)


CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1200,900", "--remote-debugging-port=0",
)


class Page:
    """One tab of a headless Chromium, driven over the DevTools protocol."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.session = ""
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        await self.ws.send(json.dumps(message))
        while True:
            answer = json.loads(await within(self.ws.recv(), f"answer to {method}"))
            if answer.get("id") == ident:
                if "error" in answer:
                    raise AssertionError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))
            self._events.append(answer)

    async def open(self, url: str) -> None:
        """Attach to the blank tab, then load ``url`` in it and wait for its load event."""
        targets = (await self.call("Target.getTargets"))["targetInfos"]
        (tab,) = [t for t in targets if t["type"] == "page"]
        attached = await self.call("Target.attachToTarget", targetId=tab["targetId"],
                                   flatten=True)
        self.session = attached["sessionId"]
        await self.call("Page.enable")
        self._events.clear()
        await self.call("Page.navigate", url=url)
        while not any(ev.get("method") == "Page.loadEventFired" for ev in self._events):
            self._events.append(json.loads(await within(self.ws.recv(), "the page's load")))

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (a promise is awaited); on a timeout, what
        the page shows goes into the failure's report."""
        try:
            result = await self.call("Runtime.evaluate", expression=expression,
                                     awaitPromise=True, returnByValue=True)
        except BaseException:
            if "document." not in expression:
                with contextlib.suppress(BaseException):
                    shown = await asyncio.wait_for(self.evaluate(
                        "JSON.stringify({status: document.getElementById('status').textContent,"
                        " seen: bargeinInspector.seen(), events: document.getElementById("
                        "'events').innerText})"), 10)
                    print("the page shows:", shown)
            raise
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")


@contextlib.asynccontextmanager
async def browser(chromium: str, profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium on a blank tab; its DevTools address is read from its stderr."""
    proc = await asyncio.create_subprocess_exec(
        chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    drain: asyncio.Task[bytes] | None = None
    try:
        line = await within(line_with(proc.stderr, "DevTools listening on "),
                            "DevTools address from Chromium")
        drain = asyncio.create_task(proc.stderr.read())  # keep its chatter from blocking it
        async with connect(line.split("DevTools listening on ", 1)[1].strip(), proxy=None,
                           max_size=None) as ws:
            yield Page(ws)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            await drain
