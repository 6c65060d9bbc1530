"""Explanation commands: `explain` and `eval-explain`. Heavy imports happen inside the handlers."""
from __future__ import annotations

import argparse
from dataclasses import replace
import json
import time
from pathlib import Path
from typing import Any

from ..errors import InputError
from ._common import add_model_args, emit, load_model, method_options as _options


def _target(model, image, args: argparse.Namespace):
    """The Target the arguments describe: an answer (given or predicted), a caption (given or the model's own),
    or one token of it."""
    from ..explain import own_target
    from ..models.base import Target

    if args.question is not None:
        if args.token is not None:
            raise InputError("--token picks a caption token; it cannot go with --question")
        if args.target:
            return Target("answer", args.target, question=args.question, contrast=args.contrast)
        return replace(own_target(model, image, args.question)[0], contrast=args.contrast)
    if args.target:
        caption = args.target
    else:
        caption = own_target(model, image)[0].text
    if args.token is not None:
        return Target("token", caption, token=args.token, contrast=args.contrast)
    if args.contrast is not None:
        raise InputError("--contrast replaces one word: give --token (or --question)")
    return Target("caption", caption)


def _out_path(path: str) -> Path:
    out = Path(path)
    if not out.parent.is_dir():
        raise InputError(f"cannot write {out}: folder {out.parent} does not exist")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise InputError(f"--out must end in .png, .jpg or .webp, got {out.name!r}")
    return out


def _cmd_explain(args: argparse.Namespace) -> int:
    from ..images import load_image

    out = _out_path(args.out)
    options = _options(args.option)
    image = load_image(args.image)
    model = load_model(args)
    target = _target(model, image, args)
    started = time.perf_counter()
    payload: dict[str, Any] = {"model": model.info.name, "method": args.method, "target": target.text}
    if target.question:
        payload["question"] = target.question
    if target.kind == "token":
        payload["token"] = target.token
    if target.contrast is not None:
        payload["contrast"] = target.contrast
    if args.method == "modality" and not args.all_tokens:
        from .. import viz
        from ..explain import modality_share

        share = modality_share(model, image, target, **options)
        viz.plot_modality(share, title=target.text).savefig(out)
        payload |= {"image_share": round(share["image_share"], 4), "text_share": round(share["text_share"], 4),
                    "seconds": round(time.perf_counter() - started, 4), "out": str(out)}
        emit(payload, args.json, f"image {share['image_share']:.0%}, text {share['text_share']:.0%}; wrote {out}")
        return 0
    from .. import viz
    from ..explain import explain

    if args.all_tokens:
        return _sheet(args, model, image, target, out, options, payload, started)
    e = explain(model, image, target, args.method, **options)
    viz.overlay(image, e.upsampled).save(out)
    h, w = e.grid.shape
    payload |= {"grid": [h, w], "map": [[round(float(v), 4) for v in row] for row in e.grid],
                "seconds": round(time.perf_counter() - started, 4), "out": str(out)}
    if e.text is not None:
        payload["text"] = [{"token": t, "score": round(s, 6)} for t, s in e.text]
    what = f"{target.text!r}" + (f" rather than {target.contrast!r}" if target.contrast else "")
    emit(payload, args.json, f"{args.method} map of {what} ({e.seconds:.2f} s); wrote {out}")
    return 0


def _sheet(args, model, image, target, out: Path, options: dict, payload: dict, started: float) -> int:
    """--all-tokens: one map per caption token (OUT_0.png, OUT_1.png, …), token by token."""
    from .. import viz
    from ..explain import iter_tokens

    if target.kind != "caption" or args.method == "modality":
        raise InputError("--all-tokens explains every token of a caption with a map method; it cannot go with "
                         "--question, --token or --method modality")
    tokens = []
    for item in iter_tokens(model, image, target.text, args.method, **options):
        e = item.explanation
        path = out.with_name(f"{out.stem}_{item.index}{out.suffix}")
        viz.overlay(image, e.upsampled).save(path)
        tokens.append({"token": item.index, "text": item.token,
                       "map": [[round(float(v), 4) for v in row] for row in e.grid], "out": str(path)})
    payload |= {"grid": list(model.info.patch_grid), "tokens": tokens,
                "seconds": round(time.perf_counter() - started, 4)}
    emit(payload, args.json, f"{args.method} maps of {len(tokens)} tokens of {target.text!r} "
                             f"({payload['seconds']:.2f} s); wrote {out.stem}_0{out.suffix} …")
    return 0


def _cmd_eval_explain(args: argparse.Namespace) -> int:
    from ..explain import evaluate_explanations

    methods = [m.strip() for m in ",".join(args.methods or []).split(",") if m.strip()] or None
    if args.n < 1:
        raise InputError(f"--n must be at least 1, not {args.n}")
    if args.di_steps < 1:
        raise InputError(f"--di-steps must be at least 1, not {args.di_steps}")
    if args.save and not Path(args.save).parent.is_dir():
        raise InputError(f"cannot write {args.save}: folder {Path(args.save).parent} does not exist")
    if args.target == "caption-words":
        return _eval_caption_words(args, methods)
    if args.contrast:
        raise InputError("--contrast goes with --target caption-words")
    model = load_model(args)
    report = evaluate_explanations(model, methods, n=args.n, seed=args.seed, batch=args.batch,
                                   progress=not args.json)
    return _report(args, report, format_table)


def _eval_caption_words(args: argparse.Namespace, methods: list[str] | None) -> int:
    from ..explain import evaluate_caption_words, format_caption_words

    model = load_model(args)
    variants = ("plain", "contrastive") if args.contrast else ("plain",)
    options: dict[str, dict[str, Any]] = {}
    for key, value in _options(args.option).items():
        method, dot, name = key.partition(".")
        if not dot or not name:
            raise InputError(f"eval-explain --option takes METHOD.KEY=VALUE (e.g. ig.steps=16), got {key!r}")
        options.setdefault(method.replace("_", "-"), {})[name] = value
    report = evaluate_caption_words(model, methods, n=args.n, seed=args.seed, batch=args.batch, variants=variants,
                                    progress=not args.json, options=options, di_steps=args.di_steps)
    return _report(args, report, format_caption_words)


def _report(args: argparse.Namespace, report: dict, table) -> int:
    """Save the report (--save), then print it as JSON (--json) or as `table(report)`."""
    if args.save:
        Path(args.save).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report) if args.json else table(report))
    return 0


def format_table(report: dict) -> str:
    lines = [f"{report['model']}: {report['questions']} held-out questions with one evidence object; "
             f"answer accuracy {report['answer_accuracy']:.1%}; pointing chance {report['pointing_chance']:.1%}",
             f"{'method':<12} {'pointing':>8} {'mass in':>8} {'deletion':>9} {'(random)':>9} "
             f"{'insertion':>9} {'(random)':>9} {'s/map':>8}"]
    for m, r in report["methods"].items():
        lines.append(f"{m:<12} {r['pointing_game']:>8.1%} {r['mass_inside']:>8.1%} {r['deletion_auc']:>9.3f} "
                     f"{r['random_deletion_auc']:>9.3f} {r['insertion_auc']:>9.3f} {r['random_insertion_auc']:>9.3f} "
                     f"{r['seconds_per_map']:>8.4f}")
    return "\n".join(lines)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="draw where the model looked for an answer, a caption, or one caption token")
    p.add_argument("image")
    p.add_argument("--question", default=None, help="explain the answer to this question (default: the caption)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--target", default=None,
                       help="the answer (with --question) or caption to explain (default: the model's own)")
    which.add_argument("--token", type=int, default=None, help="explain only this caption token (0-based)")
    p.add_argument("--contrast", default=None, metavar="WORD",
                   help="explain log p(target) - log p(WORD): why this token (--token) or answer and not WORD")
    p.add_argument("--all-tokens", action="store_true",
                   help="one map per caption token, written to OUT_0.png, OUT_1.png, … (a sheet)")
    p.add_argument("--method", default="attention",
                   help="attention, rollout, relevance, ig, ig-pixels, saliency, inputxgrad, gradcam, occlusion, "
                        "shapley, text-ig, or modality (image vs text share)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="method option, e.g. steps=64 (repeatable)")
    p.add_argument("--out", required=True, help="where to write the overlay (PNG); for modality, the share plot")
    add_model_args(p)
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("eval-explain", help="score explanation methods on held-out world questions or caption words")
    add_model_args(p)
    p.add_argument("--target", choices=("answers", "caption-words"), default="answers",
                   help="answers: one-evidence questions; caption-words: each colour, size and shape word of the "
                        "model's correct captions, as a caption token, on its own object")
    p.add_argument("--contrast", action="store_true",
                   help="caption-words: also score contrastive maps (the word vs the most probable other word of "
                        "its kind)")
    p.add_argument("--save", default=None, metavar="FILE", help="also write the JSON report to FILE")
    p.add_argument("--di-steps", type=int, default=16, help="caption-words: points on each deletion/insertion curve")
    p.add_argument("--option", action="append", metavar="METHOD.KEY=VALUE",
                   help="caption-words: a method option, e.g. ig.steps=16 (repeatable)")
    p.add_argument("--methods", nargs="*", default=None,
                   help="methods, space or comma separated (default: every image map the model can run)")
    p.add_argument("--n", type=int, default=500,
                   help="questions with exactly one evidence object (caption-words: held-out scenes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=16, help="questions per batch")
    p.set_defaults(func=_cmd_eval_explain)
