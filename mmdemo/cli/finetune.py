"""Learning from corrections: `finetune` (a new model folder from the store's corrections) and `eval-captions`
(caption metrics of a model, or of given captions, against corrections or references)."""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ._common import add_model_args, emit, positive


def _share(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), not {v}")
    return v


def _quiet_loading() -> None:
    """No weight-loading progress bars from transformers (read when it is imported): stderr keeps one line."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _open_store():
    from ..store import open_store

    return open_store()


def _cmd_finetune(args: argparse.Namespace) -> int:
    from ..train.finetune import FinetuneSettings, corrections_from_store, finetune

    _quiet_loading()
    if not args.model:
        raise InputError("--model is required: the model to fine-tune")
    settings = FinetuneSettings(steps=args.steps, batch=args.batch, lr=args.lr, eval_share=args.eval_share,
                                replay=args.replay, original_scenes=args.original_scenes, seed=args.seed)
    with _open_store() as store:
        data = corrections_from_store(store, campaign=args.campaign, approved_only=args.approved_only)
    command = "python -m mmdemo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = finetune(args.model, data, args.out, settings, device=args.device, progress=not args.json,
                      command=command)
    b, a = report["before"], report["after"]
    pct = lambda v: "—" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    emit(report, args.json, f"wrote {report['out']}: {report['n_train']} corrections trained, {report['n_eval']} "
                            f"held out; exact match {pct(b.get('exact'))} -> {pct(a.get('exact'))}")
    return 0


def read_references(path: str | Path) -> list[dict[str, Any]]:
    """Rows {"image", "reference", "prediction"?} from JSON Lines, a JSON list, or CSV with columns image and
    reference (or caption / corrected), optionally prediction; image paths are relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
        elif path.suffix == ".json":
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (ValueError, csv.Error) as e:
        raise InputError(f"{path} is not a readable JSON Lines, JSON or CSV file: {e}") from None
    out = []
    for i, r in enumerate(rows, 1):
        ref = r.get("reference") or r.get("caption") or r.get("corrected") if isinstance(r, dict) else None
        if not ref:
            raise InputError(f"{path}, row {i}: no reference (columns: reference, caption or corrected)")
        image = r.get("image")
        out.append({"image": None if not image else str(path.parent / image), "reference": str(ref),
                    "prediction": r.get("prediction")})
    if not out:
        raise InputError(f"{path} holds no rows")
    return out


def _cmd_eval_captions(args: argparse.Namespace) -> int:
    from ..images import load_image
    from ..train.caption_metrics import caption_metrics

    _quiet_loading()
    if args.from_store == bool(args.input):
        raise InputError("give one of --from-store or --input FILE")
    if args.from_store:
        from ..train.finetune import corrections_from_store

        with _open_store() as store:
            data = corrections_from_store(store, campaign=args.campaign, approved_only=args.approved_only,
                                          tasks=("caption",))
        if not data.examples:
            raise InputError("no caption corrections to score against" +
                             (f" in campaign {args.campaign!r}" if args.campaign else ""))
        images, refs, given = [e.image for e in data.examples], [e.text for e in data.examples], None
    else:
        rows = read_references(args.input)
        refs = [r["reference"] for r in rows]
        given = [r["prediction"] for r in rows] if all(r["prediction"] is not None for r in rows) and not args.model \
            else None
        if given is None and any(r["image"] is None for r in rows):
            raise InputError("every row needs an image (or every row a prediction, and no --model)")
        images = None if given is not None else [load_image(r["image"]) for r in rows]
    model_name, mentions = None, args.mentions
    if given is None:
        from ._common import load_model

        model = load_model(args)
        if "caption" not in model.info.tasks:
            raise InputError(f"{model.info.name!r} does not caption images")
        model_name, mentions = model.info.name, mentions or model.info.domain == "shapes"
        given = [c.text for s in range(0, len(images), 32) for c in model.caption(images[s:s + 32])]
    report = {"model": model_name, **caption_metrics(given, refs, mentions=mentions)}
    emit(report, args.json, " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in report.items() if v is not None))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model on the store's corrections into a new model folder")
    add_model_args(p)
    p.add_argument("--from-store", action="store_true", required=True,
                   help="learn from the corrections store ($MMDEMO_DATA_DIR or $MMDEMO_DATABASE_URL)")
    p.add_argument("--campaign", default=None, help="only this campaign's submissions (not rejected ones)")
    p.add_argument("--approved-only", action="store_true", help="only submissions a reviewer approved")
    p.add_argument("--out", required=True, help="the new model folder (must not exist yet)")
    p.add_argument("--steps", type=positive, default=200)
    p.add_argument("--batch", type=positive, default=16, help="corrections per step")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--eval-share", type=_share, default=0.2, help="share of the images held out for evaluation")
    p.add_argument("--replay", type=float, default=1.0,
                   help="shapes-world models: original scenes per correction in each batch")
    p.add_argument("--original-scenes", type=int, default=200,
                   help="shapes-world models: held-out world scenes measured before and after (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("eval-captions",
                       help="caption metrics (exact, mention F1, BLEU-4, chrF, CIDEr-D, edit distance)")
    add_model_args(p)
    p.add_argument("--from-store", action="store_true", help="score against the store's caption corrections")
    p.add_argument("--input", default=None,
                   help="JSON Lines / JSON / CSV of image, reference (and prediction: scored as given without --model)")
    p.add_argument("--campaign", default=None)
    p.add_argument("--approved-only", action="store_true")
    p.add_argument("--mentions", action="store_true", help="report object-mention F1 (on for shapes-world models)")
    p.set_defaults(func=_cmd_eval_captions)
