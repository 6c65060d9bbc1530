"""`python -m mmdemo space`: write a ready Hugging Face Space folder. No torch, no gradio."""
from __future__ import annotations

import argparse
import json


def _cmd_space(args: argparse.Namespace) -> int:
    from ..space._folder import generate

    summary = generate(args.hardware, args.models, args.out, dataset=args.dataset, force=args.force)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"wrote a {summary['hardware']} Space to {summary['out']} ({summary['bytes'] / 2**20:.1f} MB): "
              f"{', '.join(summary['models'])}; push it with `hf upload USER/SPACE {summary['out']} --repo-type space`")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="write a ready Hugging Face Space folder (README header, requirements, app.py)")
    p.add_argument("--hardware", required=True, help="cpu-basic, t4-small or zero-gpu")
    p.add_argument("--models", required=True, help="comma-separated model names; the first is the default")
    p.add_argument("--out", required=True, help="folder to write (new or empty)")
    p.add_argument("--dataset", default=None, help="dataset repo USER/NAME that keeps the corrections")
    p.add_argument("--force", action="store_true", help="replace the generated files in a non-empty folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_space)
