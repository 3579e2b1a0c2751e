"""The ``bargein`` command line: one clear line on error, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bargein import __version__, logs
from bargein.adapters.endpoints import Endpoint
from bargein.adapters.secrets import ENV_VARS, ApiKey
from bargein.cli.inspecting import add_options as add_inspect_options
from bargein.errors import BargeinError, UsageError
from bargein.redaction import redact
from bargein.states import DEFAULT_TABLE, StateTable
from bargein.states.diagram import render

if TYPE_CHECKING:
    from bargein.tools import Tool

DEFAULT_MODEL = "gpt-realtime"
SIM_SPEED = 1.5
"""``bargein sim``'s pace: faster than real time, as upstream, yet slow enough that a user
who cuts in during the first seconds of a reply finds it still being generated."""


class _SimHelp(argparse.HelpFormatter):
    """Fills in the simulator's own facts (its fault names, its default time to first
    audio) only when ``bargein sim --help`` is shown: other commands never import it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text is None or "{sim:" not in text:
            return text
        import dataclasses

        from bargein.sim import DEFAULT_REPLY_LATENCY_MS, PHASES, Faults

        names = ", ".join(f.name for f in dataclasses.fields(Faults))
        return (text.replace("{sim:faults}", f"{names} (disconnect_at: {'|'.join(PHASES)})")
                .replace("{sim:latency}", f"{DEFAULT_REPLY_LATENCY_MS:g}"))


def load_named(spec: str, option: str) -> object:
    """What ``MODULE:NAME`` names, the module found from the current directory as
    ``python -m`` finds it; a ``UsageError`` naming ``option`` when it cannot be."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"{option} takes MODULE:NAME, got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from None
    if not hasattr(module, attr):
        raise UsageError(f"{module_name} has no {attr!r}")
    return getattr(module, attr)


def load_table(spec: str | None) -> StateTable:
    """``MODULE:NAME`` naming a ``StateTable`` (or anything with a ``table`` attribute)."""
    if spec is None:
        return DEFAULT_TABLE
    value = load_named(spec, "--machine")
    table = value if isinstance(value, StateTable) else getattr(value, "table", None)
    if not isinstance(table, StateTable):
        raise UsageError(f"{spec} is not a bargein StateTable")
    return table


def load_tools(spec: str | None) -> list[Tool | Callable[..., Any]]:
    """``MODULE:NAME`` naming a list of functions (or tools), or one of them."""
    from bargein.tools import Tool

    if spec is None:
        return []
    value = load_named(spec, "--tools")
    found: list[object] = list(value) if isinstance(value, (list, tuple)) else [value]
    tools: list[Tool | Callable[..., Any]] = [
        item for item in found if isinstance(item, Tool) or callable(item)]
    if not tools or len(tools) != len(found):
        raise UsageError(f"{spec} is not a function or a list of functions")
    return tools


def cmd_diagram(args: argparse.Namespace) -> int:
    text = render(load_table(args.machine), args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bargein.states.table import TableProblems
    from bargein.testing.explore import verify

    try:
        table = load_table(args.machine)
    except TableProblems as exc:  # it cannot even be built: one line per reason
        print("\n".join(f"problem: {p}" for p in exc.problems), flush=True)
        return 1
    ok, lines = verify(table)
    print("\n".join(lines), flush=True)
    return 0 if ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from bargein.cli.demo import demo
    from bargein.cli.runner import exit_code

    _show_logs(args)
    result = asyncio.run(demo(Path(args.out)))
    return exit_code(result.reason)


def cmd_sim(args: argparse.Namespace) -> int:
    from bargein.sim import (
        DEFAULT_REPLY_LATENCY_MS,
        DEFAULT_SCRIPT,
        Faults,
        SimConfig,
        parse_script,
        serve,
    )
    from bargein.sim.tls import server_context

    if args.tls_key and not args.tls_cert:
        raise UsageError("--tls-key needs --tls-cert")
    tls = server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    _show_logs(args, default="info")  # a server's log is its output: a line per connection
    script = DEFAULT_SCRIPT
    if args.script:
        try:
            text = Path(args.script).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the script {args.script}: {exc.strerror}") from None
        script = parse_script(text)  # texts, "call NAME {...} => answer", " | " parts
    latency = DEFAULT_REPLY_LATENCY_MS if args.reply_latency is None else args.reply_latency
    config = SimConfig(script=script, speed=args.speed, voice=args.voice,
                       faults=Faults.parse(args.faults), reply_latency_ms=latency,
                       chunk_ms=args.chunk_ms,
                       record_audio=False, keep_records=False)  # a server must not hoard
    serve(args.host, args.port, config, tls=tls,
          on_ready=lambda url: print(f"bargein simulator on {url}: replies at {args.speed:g}x "
                                     f"real time, first audio {latency:g} ms after "
                                     f"the user's turn (Ctrl-C stops)", flush=True))
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from bargein.adapters.audio.devices import describe, list_devices

    devices = list_devices()
    if not devices:
        print("no audio devices (is an audio server running?)")
        return 1
    print(describe(devices))
    return 0


def endpoint_from(args: argparse.Namespace) -> tuple[Endpoint, ApiKey | None]:
    """The endpoint and key the talk options name; the key only ever from the environment,
    and never to a server on this machine unless ``--send-key`` asks; a proxy only when
    ``--proxy`` names one (never the environment's)."""
    from bargein.adapters import endpoints

    if args.azure_resource or args.azure_deployment:
        if not (args.azure_resource and args.azure_deployment):
            raise UsageError("Azure needs both --azure-resource and --azure-deployment")
        key = ApiKey.from_env(ENV_VARS["azure"])
        if args.azure_api_version:
            endpoint = endpoints.azure_preview(args.azure_resource, args.azure_deployment,
                                               args.azure_api_version)
        else:
            endpoint = endpoints.azure(args.azure_resource, args.azure_deployment, args.api)
        return endpoint.via(args.proxy), key
    if args.url:
        endpoint = endpoints.custom(args.url, args.model, api=args.api,
                                    auth="bearer" if args.send_key else None).via(args.proxy)
        if endpoint.auth == "none":
            return endpoint, None
        return endpoint, ApiKey.from_env(ENV_VARS["openai"])
    endpoint = endpoints.openai(args.model, args.api).via(args.proxy)
    return endpoint, ApiKey.from_env(ENV_VARS["openai"])


def cmd_talk(args: argparse.Namespace) -> int:
    from bargein.adapters.session_config import (
        ClientVad,
        PushToTalk,
        SemanticVad,
        ServerVad,
        SessionConfig,
    )
    from bargein.cli.console import LivePrinter, detector_name, figures_table, mode_line
    from bargein.cli.inspecting import inspecting
    from bargein.cli.runner import exit_code, hold, push_to_talk_keys
    from bargein.talking import connect

    _show_logs(args)
    endpoint, key = endpoint_from(args)
    tools = load_tools(args.tools)
    turn = (
        ClientVad() if args.turns == "client"
        else PushToTalk() if args.turns == "push-to-talk"
        else SemanticVad(interrupt_response=not args.client_cancel)
        if args.turns == "semantic"
        else ServerVad(interrupt_response=not args.client_cancel)
    )
    config = SessionConfig(turn_detection=turn, voice=args.voice, instructions=args.instructions,
                           input_transcription_model=args.transcription_model,
                           reply=args.reply)

    async def conversation() -> int:
        connecting = connect(
            endpoint, key=key, input=args.input, output=args.output, config=config,
            observer=LivePrinter(), linger_s=args.linger, local_vad=args.local_vad,
            input_device=args.input_device, output_device=args.output_device,
            allow_plaintext=args.allow_plaintext, echo_cancel=not args.no_echo_cancel,
            barge_in=args.barge_in, tools=tools)
        devices = args.input == "mic" and args.output == "speaker"
        two_phase = not connecting.session.conversation.table.server_interrupts
        mode = mode_line(host=endpoint.host, api=endpoint.api, turns=args.turns,
                         client_cancel=args.client_cancel,
                         local_vad=detector_name(connecting.session.local_vad),
                         two_phase=two_phase,
                         input=_audio_name(args.input, args.input_device),
                         output=_audio_name(args.output, args.output_device),
                         echo_cancel=not args.no_echo_cancel if devices else None)
        keys = (push_to_talk_keys(connecting.session) if config.push_to_talk
                else contextlib.nullcontext())
        async with inspecting(args, connecting.session):
            with keys:
                session, reason = await hold(connecting, announce=mode)
        print("\nper response:\n" + figures_table(session.figures.values()), flush=True)
        return exit_code(reason)

    return asyncio.run(conversation())


def _audio_name(choice: str, device: str | None) -> str:
    return f"{choice} ({device})" if device is not None and choice in ("mic", "speaker") \
        else choice


def _logging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-format", choices=["console", "json"], default="console",
                        help="structured logs on stderr, as text or JSON lines")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        help="default: warning for console logs (the terminal shows the "
                             "conversation), info for JSON (state changes, interruptions)")


def _show_logs(args: argparse.Namespace, default: logs.LogLevel = "warning") -> None:
    level: logs.LogLevel = args.log_level or ("info" if args.log_format == "json" else default)
    logs.enable(args.log_format, level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bargein", description="Realtime voice conversations where barge-in is done right."
    )
    parser.add_argument("--version", action="version", version=f"bargein {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    diagram = sub.add_parser("diagram", help="write the conversation state diagram")
    diagram.add_argument("--format", choices=["mermaid", "svg", "md"], default="mermaid",
                         help="md: a page with the diagram, the states and the edges")
    diagram.add_argument("--machine", metavar="MODULE:NAME",
                         help="an extended StateTable (default: the built-in machine)")
    diagram.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    diagram.set_defaults(run=cmd_diagram)

    check = sub.add_parser("check", help="check a state table and run its generated tests",
                           description="Check a state table (every state can get back to "
                           "listening, none is unreachable, no two edges can both fire, ...) "
                           "and run generated event sequences that fire every edge against "
                           "the core. Exits 1 with one line per problem.")
    check.add_argument("--machine", metavar="MODULE:NAME",
                       help="an extended StateTable (default: the built-in machine)")
    check.set_defaults(run=cmd_check)

    demo = sub.add_parser("demo", help="an offline conversation with a barge-in (no key, "
                                       "no sound card)")
    demo.add_argument("--out", default="bargein-demo", metavar="DIR",
                      help="where heard.wav and timeline.svg go (default: ./bargein-demo)")
    _logging_options(demo)
    demo.set_defaults(run=cmd_demo)

    talk = sub.add_parser(
        "talk", help="a live conversation (OpenAI, Azure, or a simulator)",
        description="A live conversation. The API key comes from OPENAI_API_KEY (Azure: "
                    "AZURE_OPENAI_API_KEY); a simulator on this machine needs none.")
    talk.add_argument("--url", help="a Realtime base URL, e.g. ws://127.0.0.1:8765/v1")
    talk.add_argument("--api", choices=["ga", "beta"], default="ga",
                      help="the Realtime API flavour (default: ga)")
    talk.add_argument("--model", default=DEFAULT_MODEL, help=f"default: {DEFAULT_MODEL}")
    talk.add_argument("--azure-resource", metavar="NAME")
    talk.add_argument("--azure-deployment", metavar="NAME")
    talk.add_argument("--azure-api-version", metavar="VERSION",
                      help="use Azure's preview endpoint with this api-version")
    talk.add_argument("--input", default="mic", metavar="mic|PATH.wav",
                      help="the microphone (default), or a WAV streamed in real time, then "
                           "silence")
    talk.add_argument("--output", default="speaker", metavar="speaker|PATH.wav",
                      help="the speaker (default), or a WAV aligned to the input's clock")
    talk.add_argument("--voice", help="the assistant's voice (server default if unset)")
    talk.add_argument("--instructions", help="system instructions for the session")
    talk.add_argument("--transcription-model", metavar="MODEL",
                      help="also transcribe what the user says")
    talk.add_argument("--turns", "--vad", dest="turns",
                      choices=["server", "semantic", "client", "push-to-talk"],
                      default="server",
                      help="who ends the user's turn: the server's VAD (default), its semantic "
                           "VAD, this machine's voice detector (client: the server's is "
                           "turned off; bargein commits the audio and asks for the reply), or "
                           "a key (push-to-talk: Enter takes the floor, cutting a reply, and "
                           "Enter again sends the turn; nothing is sent in between)")
    talk.add_argument("--tools", metavar="MODULE:NAME",
                      help="functions the assistant may call: a list of them (or one) in a "
                           "module found from the current directory")
    talk.add_argument("--reply", choices=["audio", "text"], default="audio",
                      help="how the assistant answers: spoken (default) or written only "
                           "(shown as its transcript is)")
    talk.add_argument("--client-cancel", action="store_true",
                      help="the server does not cancel on speech; bargein sends response.cancel")
    talk.add_argument("--local-vad", nargs="?", const="silero", choices=["silero", "energy"],
                      help="detect the user's voice on this machine, a round trip before the "
                           "server does: Silero VAD (default) or the energy detector (which "
                           "takes a cough for speech); on by default under two-phase barge-in")
    talk.add_argument("--barge-in", choices=["auto", "instant", "two-phase"], default="auto",
                      help="instant: any sound over the reply cuts it; two-phase: duck it "
                           "and judge (a cough or an uh-huh resumes it, 600 ms of speech "
                           "cuts it; the server's interrupt_response is turned off); auto "
                           "(default): two-phase on the speaker, instant to a WAV")
    talk.add_argument("--no-echo-cancel", action="store_true",
                      help="do not remove the speaker's echo from the microphone (a headset "
                           "needs none; by default it is removed when both are devices)")
    talk.add_argument("--input-device", metavar="INDEX|NAME",
                      help="the microphone, by index or a piece of its name (bargein devices "
                           "lists them; default: the system's)")
    talk.add_argument("--output-device", metavar="INDEX|NAME",
                      help="the speaker, by index or a piece of its name")
    talk.add_argument("--linger", type=float, default=2.0, metavar="SECONDS",
                      help="with a WAV input: quiet time after it ends before the run stops")
    talk.add_argument("--allow-plaintext", action="store_true",
                      help="allow ws:// to a host that is not this machine")
    talk.add_argument("--send-key", action="store_true",
                      help="send the API key to a --url on this machine too (by default a "
                           "local server gets none)")
    talk.add_argument("--proxy", metavar="URL",
                      help="connect through this proxy (http://, https:// or socks5://), "
                           "wss:// endpoints only; HTTPS_PROXY and the like are never used")
    add_inspect_options(talk)
    _logging_options(talk)
    talk.set_defaults(run=cmd_talk)

    sim = sub.add_parser("sim", help="serve the Realtime simulator for other programs",
                         formatter_class=_SimHelp)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--speed", type=float, default=SIM_SPEED,
                     help="how many times faster than real time replies are sent (default: "
                          f"{SIM_SPEED:g}, a reply is still being generated while its first "
                          "seconds play, as upstream)")
    sim.add_argument("--reply-latency", type=float, metavar="MS",
                     help="from response.created to the first audio (default: "
                          "{sim:latency}, the order of upstream's time to first "
                          "audio; 0 answers at once)")
    sim.add_argument("--chunk-ms", type=int, default=100, metavar="MS",
                     help="audio per delta (default: 100)")
    sim.add_argument("--script", metavar="FILE",
                     help="the assistant's replies, one per line, in turn (default: built in)")
    sim.add_argument("--voice", choices=["auto", "espeak", "synthetic"], default="auto",
                     help="espeak-ng speech, a synthetic voice, or espeak when installed")
    sim.add_argument("--faults", default="", metavar="name=value,...",
                     help="faults for every connection: {sim:faults}; e.g. "
                          "late_deltas_after_cancel=3,disconnect_at=mid_reply (a client "
                          "chooses its own with ?sim_faults=...)")
    sim.add_argument("--tls-cert", metavar="FILE",
                     help="serve wss:// with this certificate (PEM); clients must trust it "
                          "(bargein talk and Python clients: SSL_CERT_FILE=FILE)")
    sim.add_argument("--tls-key", metavar="FILE",
                     help="the certificate's private key (PEM, unencrypted; default: in "
                          "--tls-cert's file)")
    _logging_options(sim)
    sim.set_defaults(run=cmd_sim)

    devices = sub.add_parser("devices", help="list the audio devices (for --input-device and "
                                             "--output-device)")
    devices.set_defaults(run=cmd_devices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except BargeinError as exc:
        print(f"bargein: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout's reader left (`| head`): nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # a bug of ours: still one line, the details in the debug log
        logs.get_logger(__name__).debug("unexpected_error", exc_info=True)
        print(f"bargein: unexpected {type(exc).__name__}: {redact(str(exc))} "
              "(run with --log-level debug for details)", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
