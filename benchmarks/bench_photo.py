"""photo-lite: latency of caption, answer and gradcam on a 224 px photo (median after warm-up), accuracy per question
form on the labelled set (assets/models/photo-lite/questions.json), and optionally deletion AUC of gradcam and ig
against random maps on every bundled photo. Writes benchmarks/results/photo.json.

    OMP_NUM_THREADS=2 python benchmarks/bench_photo.py [--runs 30] [--device cpu] [--faithfulness]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_ms, table, write  # noqa: E402

QUESTIONS = {"what": "what is this?", "is-there": "is there a cat?", "where": "where is the cat?",
             "colour": "what colour is the cat?", "cant": "how many cats are there?"}
TARGETS = {"caption": "model's own caption (its top labels)", "shown": "the class the photo shows (questions.json)"}


def latency(model, image, runs: int) -> dict:
    from mmdemo.explain import explain
    from mmdemo.models.base import Target

    target = Target("answer", "yes", question="is there a cat?")
    out = {"caption_ms": median_ms(lambda: model.caption([image]), runs),
           "gradcam_ms": median_ms(lambda: explain(model, image, target, "gradcam", cache=False), runs)}
    for form, q in QUESTIONS.items():
        out[f"answer_{form}_ms"] = median_ms(lambda q=q: model.answer([image], [q]), runs)
    return {k: round(v, 2) for k, v in out.items()}


def faithfulness(model) -> dict:
    """Per photo and per target kind: deletion AUC of gradcam, ig (8 steps) and random maps (3), 8-point curves."""
    from mmdemo.config import ASSETS
    from mmdemo.explain import deletion_insertion, explain
    from mmdemo.images import load_image
    from mmdemo.models.base import Target
    from mmdemo.models.photo.evaluate import items

    out = {}
    for path in sorted((ASSETS / "photos").glob("*.jpg")):
        image = load_image(path)
        gold = next(it for it in items() if it.photo == path.name and it.form == "what")
        top = model.answer([image], [gold.question])[0].answer
        targets = {"caption": Target("caption", model.caption([image])[0].text),
                   "shown": Target("answer", top if top in gold.answers else gold.answers[0], question=gold.question)}
        out[path.name] = {}
        for kind, target in targets.items():
            cam = explain(model, image, target, "gradcam", cache=False).raw
            ig = explain(model, image, target, "ig", cache=False, steps=8).raw
            by_cam = deletion_insertion(model, image, target, cam, steps=7, random_maps=3)
            by_ig = deletion_insertion(model, image, target, ig, steps=7, random_maps=0)
            out[path.name][kind] = {"target": target.text, "gradcam": round(by_cam["deletion_auc"], 4),
                                    "ig": round(by_ig["deletion_auc"], 4),
                                    "random": round(by_cam["random"]["deletion_auc"], 4)}
    return out


def main() -> None:
    from PIL import Image

    import mmdemo
    from mmdemo.config import ASSETS
    from mmdemo.images import load_image
    from mmdemo.models.photo.evaluate import evaluate, items

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--faithfulness", action="store_true", help="also deletion AUC on every photo (minutes on CPU)")
    args = ap.parse_args()

    started = time.perf_counter()
    model = mmdemo.load("photo-lite", device=args.device)
    load_s = time.perf_counter() - started
    image = load_image(ASSETS / "photos" / "chelsea.jpg").resize((224, 224), Image.Resampling.BICUBIC)
    lat = latency(model, image, args.runs)
    results = {split or "all": evaluate(model, items(split)) for split in ("val", "test", None)}
    acc = {split: {k: v for k, v in r.items() if k != "rows"} for split, r in results.items()}
    payload = {"model": model.info.to_dict(), "device": args.device, "runs": args.runs, "load_s": round(load_s, 2),
               "image": "assets/photos/chelsea.jpg resized to 224x224", "latency": lat, "accuracy": acc,
               "wrong": [{k: r[k] for k in ("photo", "question", "answer", "prob", "gold")}
                         for r in results["all"]["rows"] if not r["correct"]],
               "note": ("CPU numbers taken while another process trained on both cores and this one ran at nice 19: "
                        "pessimistic")}
    if args.faithfulness:
        payload["deletion_auc"] = {"targets": TARGETS, "photos": faithfulness(model)}
    path = write("photo", payload)
    rows = [("load", f"{load_s:.1f} s")] + [(k, f"{v:.1f} ms") for k, v in lat.items()]
    for split, r in acc.items():
        forms = ", ".join(f"{f} {v['correct']}/{v['n']}" for f, v in r["per_form"].items())
        rows.append((f"accuracy {split}", f"{r['accuracy']:.3f} ({r['correct']}/{r['n']}): {forms}"))
    for photo, kinds in payload.get("deletion_auc", {}).get("photos", {}).items():
        for kind, v in kinds.items():
            rows.append((f"deletion AUC {photo} ({kind})",
                         f"gradcam {v['gradcam']:.3f}  ig {v['ig']:.3f}  random {v['random']:.3f}  [{v['target']}]"))
    table(rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
