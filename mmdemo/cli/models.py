"""Model commands: caption, ask, eval, train, easy-vqa. Heavy imports happen inside the handlers."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import InputError
from ..world.vocab import QUESTION_TYPES
from ._common import add_decoding_args, add_model_args, decoding_from, emit, load_model


def _cmd_caption(args: argparse.Namespace) -> int:
    from ..images import load_image

    decoding = decoding_from(args)
    image = load_image(args.image)
    model = load_model(args)
    if "caption" not in model.info.tasks:
        raise InputError(f"{model.info.name!r} does not caption images (its tasks: {', '.join(model.info.tasks)})")
    started = time.perf_counter()
    cap = model.caption([image], decoding)[0]
    payload = {"model": model.info.name, **cap.to_dict(), "seconds": round(time.perf_counter() - started, 4)}
    emit(payload, args.json, cap.text)
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    from ..images import load_image

    if not args.question.strip():
        raise InputError("the question is empty")
    image = load_image(args.image)
    model = load_model(args)
    if "vqa" not in model.info.tasks:
        raise InputError(f"{model.info.name!r} does not answer questions (its tasks: {', '.join(model.info.tasks)})")
    started = time.perf_counter()
    ans = model.answer([image], [args.question], top_k=args.top_k)[0]
    payload = {"model": model.info.name, "question": args.question, **ans.to_dict(),
               "seconds": round(time.perf_counter() - started, 4)}
    emit(payload, args.json, f"{ans.answer} ({ans.prob:.2f})")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..train.evaluate import evaluate

    model = load_model(args)
    report = evaluate(model, args.n, args.seed, variations=not args.plain, progress=not args.json)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['model']}: VQA {report['vqa_accuracy']:.4f} on {report['questions']} questions, "
              f"caption exact {report['caption_exact']:.4f}, mention F1 {report['mention_f1']:.4f}")
        for t, acc in report["vqa_by_type"].items():
            print(f"  {t:<12} {acc:.4f}  ({report['questions_by_type'][t]})")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ..train.config import TrainConfig
    from ..train.shapes import train

    cfg = TrainConfig(fusion=args.fusion, stage=args.stage, encoder=args.encoder, data_fraction=args.data_fraction,
                      tasks=tuple(args.tasks), steps=args.steps, batch=args.batch, lr=args.lr, pool=args.pool,
                      seed=args.seed, run_dir=args.run_dir, out=args.out, threads=args.threads,
                      questions=args.questions, warmup=args.warmup, focus=tuple(args.focus or ()), focus_share=args.focus_share,
                      init=args.init, readout=not args.no_readout)
    out = train(cfg, resume=not args.restart)
    print(f"wrote {out}")
    return 0


def _cmd_easy_vqa(args: argparse.Namespace) -> int:
    from ..models.shapes import weights
    from ..train.easyvqa import finetune

    init = Path(args.init) if Path(args.init).is_dir() else weights.model_dir(args.init)
    if not weights.has_weights(init):
        raise InputError(f"no shapes model at {args.init!r} (a name like shapes-cross or a model folder)")
    out = args.out or f"runs/easy-vqa-{init.name}"
    report = finetune(init, out, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                      threads=args.threads, limit=args.limit, progress=not args.json)
    if args.json:
        print(json.dumps(report))
    else:
        t = report["test"]
        print(f"{report['model']}: easy-VQA test accuracy {t['accuracy']:.4f} on {t['questions']} questions "
              f"({', '.join(f'{k} {v:.4f}' for k, v in t['by_form'].items())}); wrote {out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from ..train.config import TrainConfig

    model_args = add_model_args

    p = sub.add_parser("caption", help="caption an image")
    p.add_argument("image")
    model_args(p)
    add_decoding_args(p)
    p.set_defaults(func=_cmd_caption)

    p = sub.add_parser("ask", help="answer a question about an image")
    p.add_argument("image")
    p.add_argument("question")
    model_args(p)
    p.add_argument("--top-k", type=int, default=5)
    p.set_defaults(func=_cmd_ask)

    p = sub.add_parser("eval", help="evaluate a model on freshly generated held-out world scenes")
    model_args(p)
    p.add_argument("--n", type=int, default=1000, help="number of scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plain", action="store_true", help="only plain 128 px scenes (default: every drawing variation)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("train", help="pretrain or fine-tune a shapes model (resumes from its checkpoint)")
    p.add_argument("--fusion", choices=("early", "cross", "late"), default="cross")
    p.add_argument("--stage", choices=("pretrain", "finetune"), default="finetune",
                   help="pretrain: masked words + image–text matching on image–caption pairs (writes "
                        "runs/pretrained/…); finetune: answers, captions, patch classes")
    p.add_argument("--encoder", choices=("patch", "efficientnet_lite0"), default="patch",
                   help="image encoder: a conv stem trained from scratch, or a frozen ImageNet EfficientNet-Lite0")
    p.add_argument("--data-fraction", type=float, default=1.0,
                   help="fine-tune on the labels of only this share of the training views")
    p.add_argument("--tasks", nargs="+", choices=("vqa", "lm", "aux"), default=list(TrainConfig.tasks),
                   help="fine-tuning losses: answers, captions, per-patch classes")
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--batch", type=int, default=TrainConfig.batch, help="images per step")
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--pool", type=int, default=80_000, help="rendered training views")
    p.add_argument("--questions", type=int, default=TrainConfig.questions, help="questions per image per step")
    p.add_argument("--warmup", type=int, default=300, help="warm-up steps of the learning rate")
    p.add_argument("--focus", nargs="*", choices=QUESTION_TYPES, default=list(TrainConfig.focus),
                   help="question types drawn more often (a curriculum)")
    p.add_argument("--focus-share", type=float, default=TrainConfig.focus_share)
    p.add_argument("--init", default=None, help="start from this model folder (fine-tuning)")
    p.add_argument("--no-readout", action="store_true",
                   help="fusion attention without the coordinate readout (as the first shapes models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default="runs")
    p.add_argument("--out", default=None,
                   help="model folder (default assets/models/shapes-FUSION; pretraining: runs/pretrained/NAME)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("easy-vqa", help="fine-tune a shapes model on easy-VQA's train split, report its test split")
    p.add_argument("--init", default="shapes-cross", help="shapes model name or folder to start from")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=128, help="questions per step")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="only the first N questions of each split (a smoke test)")
    p.add_argument("--out", default=None, help="model folder (default runs/easy-vqa-INIT)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_easy_vqa)
