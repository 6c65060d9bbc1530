"""`batch caption|ask|explain`: a dataset through a model into Parquet shards; heavy imports in the handler."""
from __future__ import annotations

import argparse
import sys

from ..errors import InputError
from ._common import add_decoding_args, decoding_from, emit, method_options, positive as _positive


def _cmd_batch(args: argparse.Namespace) -> int:
    from ..batch.inputs import read_questions
    from ..batch.job import Job, run

    questions = list(args.question or [])
    if args.questions:
        questions += read_questions(args.questions)
    if args.task == "caption" and questions:
        raise InputError("batch caption takes no questions; use batch ask")
    options = tuple(method_options(args.option).items())
    job = Job(args.task, model=args.model, method=args.method, options=options, top_k=args.top_k,
              seed=args.seed, device=args.device, decoding=decoding_from(args).to_dict())
    summary = run(job, args.input, args.out, questions=questions or None, engine=args.engine, address=args.address,
                  batch_size=args.batch_size, actors=args.actors, num_cpus=args.num_cpus, shard_rows=args.shard_rows,
                  campaign=args.campaign, progress=not args.json and sys.stderr.isatty())
    text = summary.line() + (f"; tasks added to campaign {args.campaign!r}" if args.campaign else "")
    emit(summary.to_dict(), args.json, text)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="caption, answer or explain a whole dataset into Parquet shards (local or Ray)")
    p.add_argument("task", choices=("caption", "ask", "explain"))
    p.add_argument("--input", required=True, metavar="DIR|FILE",
                   help="a folder of images, a .parquet with an image_path column, a COCO .json, or a .txt list")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="Parquet folder; a rerun skips what it holds")
    p.add_argument("--model", default=None,
                   help="registered name, hub id or local folder (default: MMDEMO_DEFAULT_MODEL)")
    p.add_argument("--question", action="append", metavar="Q", help="ask (or explain the answer to) Q of every image")
    p.add_argument("--questions", metavar="FILE", help="questions, one a line, asked of every image")
    p.add_argument("--method", default="attention", help="explain: the method (as `mmdemo explain --method`)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="explain: method option, e.g. steps=16")
    p.add_argument("--top-k", type=_positive, default=5, help="ask: answers kept per question")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--address", default=None, help="ray: join this cluster (auto: the one `ray start` runs here)")
    p.add_argument("--actors", type=_positive, default=1, help="ray: model actors (one model load each)")
    p.add_argument("--num-cpus", type=_positive, default=None, help="ray without --address: CPUs of the local Ray")
    p.add_argument("--batch-size", type=_positive, default=32, help="inputs per model call")
    p.add_argument("--shard-rows", type=_positive, default=1000, help="local: rows per Parquet shard")
    p.add_argument("--campaign", default=None, metavar="NAME", help="also create or fill this campaign's tasks")
    p.add_argument("--seed", type=int, default=0, help="torch seed set before every batch (and nucleus sampling's)")
    add_decoding_args(p, seed=False)
    p.add_argument("--device", default=None, help="cpu, cuda … (default: cuda when present)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_batch)
