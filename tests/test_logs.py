"""bargein's logging: silent by default, the host's stdlib setup applies, structured on demand."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bargein import logs
from bargein.adapters.secrets import ApiKey

SECRET = "0123456789abcdef0123456789abcdef"  # an Azure-shaped key: plain hex


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger(logs.ROOT)
    saved = root.level, list(root.handlers), ours.level, ours.propagate, list(ours.handlers)
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    ours.setLevel(saved[2])
    ours.propagate = saved[3]
    ours.handlers[:] = saved[4]


def test_nothing_is_printed_unless_the_host_configures_logging() -> None:
    code = (
        "from bargein.logs import get_logger\n"
        "log = get_logger('bargein.core.conversation')\n"
        "log.debug('command', kind='PlayAudio'); log.info('transition', dest='listening')\n"
        "log.warning('illegal_event'); log.error('server_error', code='x')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert (done.stdout, done.stderr) == ("", "")


def test_the_hosts_stdlib_configuration_applies_with_a_readable_message() -> None:
    stream = io.StringIO()
    logging.basicConfig(level=logging.INFO, stream=stream, force=True,
                        format="%(name)s %(levelname)s %(message)s")
    log = logs.get_logger("bargein.core.conversation")
    log.debug("command", kind="PlayAudio")
    log.info("transition", source="listening", dest="responding", reason="audio arrived")
    assert stream.getvalue() == (
        "bargein.core.conversation INFO transition source=listening dest=responding "
        "reason='audio arrived'\n"
    )


def test_enable_writes_json_lines_and_leaves_the_hosts_handlers_alone() -> None:
    host = io.StringIO()
    logging.basicConfig(level=logging.DEBUG, stream=host, force=True)
    host_handlers = list(logging.getLogger().handlers)
    out = io.StringIO()
    handler = logs.enable("json", "info", out)
    log = logs.get_logger("bargein.session")
    log.debug("hidden")
    log.info("barge_in", trigger="speech_started", responses=["resp_1"])
    assert logging.getLogger().handlers == host_handlers
    assert host.getvalue() == ""  # not printed twice
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["event"] == "barge_in" and entry["level"] == "info"
    assert entry["responses"] == ["resp_1"] and entry["logger"] == "bargein.session"
    logs.disable(handler)
    log.info("after")
    assert "after" in host.getvalue()


def test_secrets_are_masked_in_every_output_tracebacks_included() -> None:
    ApiKey(SECRET)
    host = io.StringIO()
    logging.basicConfig(level=logging.INFO, stream=host, force=True)
    log = logs.get_logger("bargein.adapters.transport")
    log.info("server_error", message=f"bad key {SECRET}", headers={"api-key": "whatever"})
    out = io.StringIO()
    logs.enable("console", "info", out)
    try:
        raise ValueError(f"echoed Bearer {SECRET}")
    except ValueError:
        log.exception("failed")
    for text in (host.getvalue(), out.getvalue()):
        assert text and SECRET not in text
    assert "***" in host.getvalue() and "ValueError" in out.getvalue()


def test_a_failed_write_is_dropped_without_a_word(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    logs.enable("console", "debug", stream)
    stream.close()
    logs.get_logger("bargein.session").info("still fine")  # raises nothing
    assert capsys.readouterr() == ("", "")


def test_capture_collects_events_as_dicts_and_prints_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with logs.capture() as entries:
        logs.get_logger("bargein.core.conversation").debug("command", kind="FlushPlayback")
    assert entries == [{"event": "command", "kind": "FlushPlayback", "log_level": "debug",
                        "logger": "bargein.core.conversation"}]
    assert capsys.readouterr() == ("", "")
