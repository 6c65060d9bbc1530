"""Campaign commands for `python -m mmdemo campaign …`: create (and refill), list, status, export."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from ._common import positive as _positive


def _questions(args: argparse.Namespace) -> list[str]:
    qs = list(args.question or [])
    if args.questions:
        try:
            lines = Path(args.questions).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the questions file {args.questions}: {e}") from None
        qs += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return qs


def _cmd_create(args: argparse.Namespace) -> int:
    from ..campaigns import create_and_fill
    from ..store import open_store

    with open_store() as store:
        result, resumed = create_and_fill(
            store, args.name, args.images, model=args.model, model_revision=args.model_revision, task=args.task,
            questions=_questions(args), overlap=args.overlap, order=args.order, review=args.review,
            instructions=args.instructions or "", seed=args.seed, batch_size=args.batch_size,
            progress=not args.json)
        payload = {**result.to_dict(), "resumed": resumed, "campaign": store.get_campaign(args.name).to_dict()}
    if args.json:
        print(json.dumps(payload, ensure_ascii=False))
    else:
        verb = "refilled" if resumed else "created"
        print(f"{verb} campaign {args.name}: {result.added} tasks added, {result.skipped} already there, "
              f"{len(result.unreadable)} unreadable")
        for bad in result.unreadable:
            print(f"  unreadable: {bad['path']}: {bad['error']}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ..store import open_store

    with open_store() as store:
        rows = [c.to_dict() for c in store.list_campaigns()]
        status = {c["name"]: store.campaign_counts(c["name"]) for c in rows} if not args.json else {}
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for c in rows:
        s = status[c["name"]]
        print(f"{c['name']:<24} {c['task']:<7} {c['model']:<16} overlap {c['overlap']}  {c['order']:<11} "
              f"{s['images_done']}/{s['images']} images done")
    if not rows:
        print("no campaigns")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ..store import open_store

    with open_store() as store:
        s = store.campaign_status(args.name)
    if args.json:
        print(json.dumps(s, ensure_ascii=False))
        return 0
    agree = s["agreement"]
    ws = "-" if agree["word_similarity"] is None else f"{agree['word_similarity']:.3f}"
    chrf = "-" if agree["chrf"] is None else f"{agree['chrf']:.1f}"
    print(f"{s['name']}: {s['images_done']}/{s['images']} images done, {s['tasks_done']} tasks done, "
          f"{s['leased']} leased, {s['pending']} pending; agreement: word similarity {ws}, chrF {chrf}")
    for a in s["annotators"]:
        secs = "-" if a["median_seconds"] is None else f"{a['median_seconds']:.1f} s"
        agr = "-" if a["agreement"] is None else f"{a['agreement']:.3f}"
        print(f"  {a['annotator']:<20} {a['tasks_done']:>5} tasks  median {secs:>8}  "
              f"edit rate {a['mean_edit_rate']:.3f}  agreement {agr}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ..store.campaign_export import export_campaign
    from ..store import open_store

    with open_store() as store:
        result = export_campaign(store, args.name, args.format, args.out)
    if args.json:
        print(json.dumps(vars(result), ensure_ascii=False))
    else:
        print(f"wrote {result.rows} submissions of campaign {args.name} to {result.path} ({result.format})")
    return 0


def add_commands(sub: Any) -> None:
    """Register `campaign create|list|status|export` on the `mmdemo` parser's subparsers."""
    from ..store._campaigns import ORDERS
    from ..store._text import TASKS

    top = sub.add_parser("campaign", help="correction campaigns: a team corrects a dataset, reviewed")
    verbs = top.add_subparsers(dest="verb", required=True, parser_class=type(top))

    p = verbs.add_parser("create", help="create a campaign (or refill one) from images, COCO or a table")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--images", required=True, metavar="DIR|FILE",
                   help="a folder of images, a COCO-captions .json, or a .parquet/.csv table of image paths")
    p.add_argument("--model", required=True, help="the model whose output annotators correct")
    p.add_argument("--model-revision")
    p.add_argument("--task", choices=TASKS, default="caption")
    p.add_argument("--questions", metavar="FILE", help="vqa: a file with one question per line")
    p.add_argument("--question", action="append", help="vqa: a question (repeat for more)")
    p.add_argument("--overlap", type=_positive, default=1, help="distinct annotators per image")
    p.add_argument("--order", choices=ORDERS, default="imported")
    p.add_argument("--review", action="store_true", help="submissions wait for a reviewer")
    p.add_argument("--instructions", help="what annotators are asked to do")
    p.add_argument("--seed", type=int, default=0, help="seed of the random order")
    p.add_argument("--batch-size", type=_positive, default=16, help="images per model call")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_create)

    p = verbs.add_parser("list", help="list campaigns")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_list)

    p = verbs.add_parser("status", help="progress, agreement and annotators of a campaign")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)

    p = verbs.add_parser("export", help="write a campaign's submissions as csv, jsonl, coco or parquet")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--format", required=True, choices=("csv", "jsonl", "coco", "parquet"))
    p.add_argument("--out", required=True, metavar="PATH")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_export)
