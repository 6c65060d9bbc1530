"""What every command shares: JSON output, the model arguments, loading the model, the decoding arguments."""
from __future__ import annotations

import argparse
import json
from typing import Any


def emit(payload: Any, as_json: bool, text: str) -> None:
    """Print the machine-readable payload with --json, else the human line."""
    print(json.dumps(payload, ensure_ascii=False) if as_json else text)


def positive(text: str) -> int:
    """argparse type: a whole number ≥ 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {n}")
    return n


def add_model_args(p: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    p.add_argument("--model", default=None, help="registered name, hub id or local folder (default: MMDEMO_DEFAULT_MODEL)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: the model's own choice)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON object")


def load_model(args: argparse.Namespace):
    """The model `--model` names (a registered name, hub id or folder) on `--device`."""
    from ..models.registry import load

    return load(args.model, device=args.device)


def add_decoding_args(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    from ..models.base import MAX_NEW_TOKENS, STRATEGIES, Decoding

    d = Decoding()
    p.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="greedy (default), beam (with --beams) or nucleus sampling (with --top-p)")
    p.add_argument("--max-new-tokens", "--max-tokens", dest="max_new_tokens", type=int, default=d.max_new_tokens,
                   help=f"most tokens to generate, 1 … {MAX_NEW_TOKENS}")
    p.add_argument("--beams", type=int, default=None, help="beam search with this many beams")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling with this top-p")
    p.add_argument("--temperature", type=float, default=d.temperature, help="sampling temperature")
    if seed:                          # a command with a --seed of its own passes seed=False and shares it
        p.add_argument("--seed", type=int, default=None, help="seed for sampling")


def decoding_from(args: argparse.Namespace):
    """The Decoding the arguments ask for; --beams N > 1 implies beam search, --top-p implies nucleus sampling."""
    from ..models.base import Decoding

    strategy = args.strategy or ("nucleus" if args.top_p is not None else
                                 "beam" if (args.beams or 1) > 1 else "greedy")
    fields: dict[str, Any] = {"strategy": strategy, "max_new_tokens": args.max_new_tokens,
                              "temperature": args.temperature, "seed": getattr(args, "seed", None)}
    if args.beams is not None:
        fields["beams"] = args.beams
    if args.top_p is not None:
        fields["top_p"] = args.top_p
    return Decoding(**fields)


def method_options(pairs: list[str] | None) -> dict[str, Any]:
    """`--option KEY=VALUE` pairs as keyword arguments of an explanation method (numbers, none/true/false cast)."""
    from ..errors import InputError

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option takes KEY=VALUE, got {pair!r}")
        out[key.strip().replace("-", "_")] = _value(value.strip())
    return out


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)
