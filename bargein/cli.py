"""The ``bargein`` command line: one clear line on error, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from bargein.errors import BargeinError
from bargein.states import DEFAULT_TABLE, StateTable
from bargein.states.diagram import render


class UsageError(BargeinError):
    """The command line asked for something that cannot be done."""


def load_table(spec: str | None) -> StateTable:
    """``MODULE:NAME`` naming a ``StateTable`` (or anything with a ``table`` attribute)."""
    if spec is None:
        return DEFAULT_TABLE
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--machine takes MODULE:NAME, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from None
    value = getattr(module, attr, None)
    table = value if isinstance(value, StateTable) else getattr(value, "table", None)
    if not isinstance(table, StateTable):
        raise UsageError(f"{spec} is not a bargein StateTable")
    return table


def cmd_diagram(args: argparse.Namespace) -> int:
    text = render(load_table(args.machine), args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bargein", description="Realtime voice conversations where barge-in is done right."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    diagram = sub.add_parser("diagram", help="write the conversation state diagram")
    diagram.add_argument("--format", choices=["mermaid", "svg"], default="mermaid")
    diagram.add_argument("--machine", metavar="MODULE:NAME",
                         help="an extended StateTable (default: the built-in machine)")
    diagram.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    diagram.set_defaults(run=cmd_diagram)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except BargeinError as exc:
        print(f"bargein: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
