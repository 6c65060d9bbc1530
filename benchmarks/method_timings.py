"""Seconds per map for every image method, per model and device, with the app's default options: the table the
app's method pickers show (assets/timings.json, read by mmdemo/explain/timings.py).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/method_timings.py [--models shapes-cross,...] [--hub blip-caption,...]
        [--device cpu|cuda] [--threads 2] [--runs 3]

Embedded models are timed on one caption token of an example scene (one answer for a question-only model). `--hub`
names hub models (blip-caption, blip-vqa, vilt-vqa, git-caption, vit-gpt2) to build at their published full size
with random weights (benchmarks/bench_hub.py's builders; no download) and time on a random 640×480 photo, one
token of a 20-token caption. Each map is the median of `--runs` runs after a warm-up (none with --runs 1, for the
slow full-size models), the explanation cache off, wall time. Rows for other models and devices already in the table are kept.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing
from _common import machine, table  # noqa: E402

HUB = {"blip-caption": "blip-caption", "blip-vqa": "blip-vqa", "vilt-vqa": "vilt", "git-caption": "git",
       "vit-gpt2": "vit-gpt2"}                 # registered name -> bench_hub builder


def target_of(model, image):
    """One caption token in the middle of the model's own caption, or the answer to a question."""
    from mmdemo.models.base import Decoding, Target

    if "caption" in model.info.tasks:
        text = model.caption([image], Decoding(max_new_tokens=20))[0].text
        n = len(model.prepare([image], [Target("caption", text)]).text_tokens[0])
        return Target("token", text, token=min(5, n - 1))
    question = "what color is the circle?" if model.info.domain == "shapes" else "what is the man holding?"
    answer = model.answer([image], [question])[0].answer
    return Target("answer", answer, question=question)


def time_methods(model, image, runs: int) -> dict[str, float]:
    from mmdemo.explain import METHODS, available_methods, explain

    target = target_of(model, image)
    out = {}
    for method in available_methods(model):
        if METHODS[method].output != "image":
            continue
        if runs > 1:
            explain(model, image, target, method, cache=False)                     # warm-up
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            explain(model, image, target, method, cache=False)
            times.append(time.perf_counter() - t)
        out[method] = round(statistics.median(times), 4)
        print(f"{model.info.name}: {method} {out[method]:.3f} s", flush=True)
    return out


def main() -> None:
    import torch

    import mmdemo
    from mmdemo.explain.timings import TIMINGS_FILE
    from mmdemo.world.examples import example_scene, read_examples

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="shapes-cross,shapes-early,shapes-late,photo-lite",
                    help="embedded models, comma-separated ('' for none)")
    ap.add_argument("--hub", default="", help=f"hub models to build at full size: {', '.join(HUB)}")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(TIMINGS_FILE))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    path = Path(args.out)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("models", {})
    stamp = {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": args.threads,
             "machine": machine()}
    rows = []

    def keep(name: str, seconds: dict[str, float], note: str) -> None:
        data["models"].setdefault(name, {})[kind] = {**stamp, "note": note, "seconds": seconds}
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        rows.extend((f"{name}: {m}", f"{s:.3f} s") for m, s in seconds.items())

    photo = random_photo()
    _, scene = example_scene(read_examples()[2])
    for name in [n.strip() for n in args.models.split(",") if n.strip()]:
        model = mmdemo.load(name, device=args.device)
        shapes = model.info.domain == "shapes"
        keep(name, time_methods(model, scene if shapes else photo, args.runs),
             "an example scene" if shapes else "a random 640x480 photo")
    if args.hub:
        from bench_hub import BUILDERS

        with tempfile.TemporaryDirectory() as root:
            for name in [n.strip() for n in args.hub.split(",") if n.strip()]:
                folder = Path(root) / name
                BUILDERS[HUB[name]](folder)
                model = mmdemo.load(str(folder), device=args.device)
                keep(name, time_methods(model, photo, args.runs),
                     "published full size, random weights; a random 640x480 photo")
                del model
    table(rows)
    print(f"wrote {path}")


def random_photo():
    from PIL import Image

    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8))


if __name__ == "__main__":
    main()
