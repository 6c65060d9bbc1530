"""Store commands for `python -m mmdemo`: correct, corrections, export, import-coco. No torch, no gradio."""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..config import settings
from ._common import emit as _print, positive as _positive


def _cmd_correct(args: argparse.Namespace) -> int:
    from ..store import open_store

    with open_store() as store:
        cid = store.add(args.image, args.output, args.corrected, model=args.model or settings().default_model,
                        model_revision=args.model_revision, task=args.task, question=args.question,
                        annotator=args.annotator, note=args.note)
        if args.json:
            print(json.dumps(store.get(cid).to_dict(), ensure_ascii=False))
        else:
            print(cid)
    return 0


def _cmd_corrections(args: argparse.Namespace) -> int:
    from ..store import open_store

    with open_store() as store:
        filters = {"model": args.model, "task": args.task, "annotator": args.annotator, "search": args.search,
                   "include_deleted": args.include_deleted}
        rows = store.list(limit=args.limit, offset=args.offset, **filters)
        if args.json:
            print(json.dumps([c.to_dict() for c in rows], ensure_ascii=False))
            return 0
        total = store.count(**filters)
    for c in rows:
        flag = " [deleted]" if c.deleted else ""
        when = c.created_at.strftime("%Y-%m-%d %H:%M")
        print(f"{c.id}  {when}  {c.model:<14} {c.task:<7} {c.annotator or '-':<12} "
              f"{_one_line(c.corrected)}{flag}")
    print(f"({len(rows)} of {total})")
    return 0


def _one_line(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _cmd_export(args: argparse.Namespace) -> int:
    from ..store.exports import export
    from ..store import open_store

    with open_store() as store:
        result = export(store, args.format, args.out, images_dir=args.images, model=args.model, task=args.task,
                        include_deleted=args.include_deleted)
    extra = f", {result.images} images in {args.images}" if args.images else ""
    if result.missing_images:
        extra += f" ({result.missing_images} images not in the store)"
    _print(vars(result), args.json, f"wrote {result.rows} corrections to {result.path} ({result.format}){extra}")
    return 0


def _cmd_import_coco(args: argparse.Namespace) -> int:
    from ..store.exports import import_coco
    from ..store import open_store

    with open_store() as store:
        result = import_coco(args.file, store, images_dir=args.images, model=args.model, annotator=args.annotator)
    _print(vars(result), args.json, f"added {result.added} corrections from {result.path}"
           f" ({result.skipped} already there, {result.images} images)")
    return 0


def add_commands(sub: Any) -> None:
    """Register the store's subcommands on the `mmdemo` parser's subparsers."""
    from ..store._text import TASKS

    p = sub.add_parser("correct", help="save a corrected caption or answer for an image")
    p.add_argument("image", metavar="IMAGE", help="image file")
    p.add_argument("--output", required=True, help="what the model said")
    p.add_argument("--corrected", required=True, help="the corrected text")
    p.add_argument("--model", help="model that produced the output (default: MMDEMO_DEFAULT_MODEL)")
    p.add_argument("--model-revision", help="weights hash or hub revision")
    p.add_argument("--task", choices=TASKS, default="caption")
    p.add_argument("--question", help="the question (task vqa)")
    p.add_argument("--annotator", help="who corrected it")
    p.add_argument("--note", help="free text")
    p.add_argument("--json", action="store_true", help="print the saved correction as JSON")
    p.set_defaults(func=_cmd_correct)

    p = sub.add_parser("corrections", help="list saved corrections, newest first")
    p.add_argument("--limit", type=_positive, default=20)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--model")
    p.add_argument("--task", choices=TASKS)
    p.add_argument("--annotator")
    p.add_argument("--search", help="substring of the texts, any case")
    p.add_argument("--include-deleted", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_corrections)

    p = sub.add_parser("export", help="write the corrections as csv, jsonl, coco or parquet")
    p.add_argument("--format", required=True, choices=("csv", "jsonl", "coco", "parquet"))
    p.add_argument("--out", required=True, metavar="PATH")
    p.add_argument("--images", metavar="DIR", help="also write the images there as <hash>.png")
    p.add_argument("--model")
    p.add_argument("--task", choices=TASKS)
    p.add_argument("--include-deleted", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("import-coco", help="add the captions of a COCO-captions JSON file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--images", metavar="DIR", help="folder holding the file_name images")
    p.add_argument("--model", default="coco-import", help="model name for captions without mmdemo provenance")
    p.add_argument("--annotator")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_import_coco)

