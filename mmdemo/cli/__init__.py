"""Command line: `python -m mmdemo COMMAND …`. Every command can print JSON; bad input exits 2 with one line.

One module per group of commands, each with `add_commands(sub)`; `_common` holds what they share (JSON output,
the model and decoding arguments, loading the model)."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Callable, Sequence

from ..errors import MmdemoError

Handler = Callable[[argparse.Namespace], int]
COMMANDS = ("mmdemo.cli.models", "mmdemo.cli.explain", "mmdemo.cli.store", "mmdemo.cli.campaign",
            "mmdemo.cli.batch", "mmdemo.cli.space", "mmdemo.cli.finetune")   # modules with add_commands(sub)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def _cmd_models(args: argparse.Namespace) -> int:
    from ..models.registry import list_models

    rows = [m.to_dict() for m in list_models()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        width = max(len(r["name"]) for r in rows) + 2
        for r in rows:
            flag = "ready" if r["available"] else "no weights"
            print(f"{r['name']:<{width}} {','.join(r['tasks']):<12} {r['fusion']:<16} {flag:<10} {r['summary']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mmdemo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("models", help="list registered models and whether their weights are here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_models)

    for module in COMMANDS:           # each group of commands adds its own
        try:
            importlib.import_module(module).add_commands(sub)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except _UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except MmdemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
