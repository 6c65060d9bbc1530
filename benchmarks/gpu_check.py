"""GPU check: every registered model whose weights are here, plus tiny random configs of each hub family, through
caption / ask / explain on CUDA in fp32 and bf16: batch-1 latency, batch throughput, one timing per explanation
method. Writes benchmarks/results/gpu_check.json. Without CUDA it says so and measures nothing (exit 0).

    python benchmarks/gpu_check.py [--batch 16] [--runs 3]

Hub models pick their dtype at load (bf16 on CUDA); fp32 is forced by loading them with that choice replaced.
Embedded models keep fp32 weights and run their bf16 pass under torch.autocast. What fails is recorded, not hidden.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(ROOT))                   # run from a checkout without installing
sys.path.insert(2, str(ROOT / "tests"))         # the tiny hub configs the tests build
from _common import median_ms, table, write  # noqa: E402

QUESTION = "what color is the circle?"
FAST = {"ig": {"steps": 8}, "ig-pixels": {"steps": 8}, "text-ig": {"steps": 8}, "shapley": {"samples": 2},
        "occlusion": {}}


@contextlib.contextmanager
def hub_dtype(dtype):
    """Hub adapters load in the dtype `_base.choose_dtype` picks; pick `dtype` instead while this is open."""
    from mmdemo.models.hub import _base

    old = _base.choose_dtype
    _base.choose_dtype = lambda device: dtype if device.type == "cuda" else old(device)
    try:
        yield
    finally:
        _base.choose_dtype = old


def build(load, dtype, hub: bool):
    with hub_dtype(dtype) if hub else contextlib.nullcontext():
        return load()


def attempt(record: dict, key: str, fn) -> None:
    """record[key] = fn(), or record["errors"][key] = the error's last line."""
    try:
        record[key] = fn()
    except Exception as e:  # noqa: BLE001 - the check reports what fails instead of stopping
        record.setdefault("errors", {})[key] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def measure(model, images, runs: int, autocast=None) -> dict:
    """Latency, throughput and explanation timings of one model; `autocast`: a dtype to run the calls under."""
    import torch

    from mmdemo.explain import available_methods, explain
    from mmdemo.models.base import Target

    info = model.info
    r: dict = {"model": info.name, "device": info.device, "dtype": info.dtype, "tasks": list(info.tasks)}
    r["autocast"] = None if autocast is None else str(autocast).replace("torch.", "")

    def sync():
        torch.cuda.synchronize()

    if autocast is not None:
        ctx = torch.autocast("cuda", dtype=autocast)
        ctx.__enter__()
    if "caption" in info.tasks:
        attempt(r, "caption_batch1_ms", lambda: round(median_ms(lambda: (model.caption(images[:1]), sync()),
                                                                runs=runs, warmup=1), 1))
        attempt(r, f"caption_batch{len(images)}_images_per_s", lambda: throughput(
            lambda: (model.caption(images), sync()), len(images)))
    if "vqa" in info.tasks:
        attempt(r, "ask_batch1_ms", lambda: round(median_ms(lambda: (model.answer(images[:1], [QUESTION]), sync()),
                                                            runs=runs, warmup=1), 1))
        attempt(r, f"ask_batch{len(images)}_images_per_s", lambda: throughput(
            lambda: (model.answer(images, [QUESTION] * len(images)), sync()), len(images)))
    if "vqa" in info.tasks:
        target = Target("answer", "red", question=QUESTION)
    else:
        target = Target("caption", model.caption(images[:1])[0].text or "a")
    timings: dict = {}
    for method in available_methods(model):
        def one(method=method):
            t = time.perf_counter()
            explain(model, images[0], target, method=method, cache=False, **FAST.get(method, {}))
            sync()
            return round((time.perf_counter() - t) * 1000, 1)
        attempt(timings, method, one)
    r["explain_ms"] = {k: v for k, v in timings.items() if k != "errors"}
    if timings.get("errors"):
        r.setdefault("errors", {}).update({f"explain/{k}": v for k, v in timings["errors"].items()})
    if autocast is not None:
        ctx.__exit__(None, None, None)
    return r


def throughput(fn, n: int, repeats: int = 3) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return round(repeats * n / (time.perf_counter() - t), 1)


def candidates(tiny_root: Path):
    """(label, loader, is_hub): registered models with weights here, then each tiny hub family from a folder."""
    import mmdemo
    from mmdemo.models.registry import list_models

    out = []
    for entry in list_models():
        if entry.available():
            out.append((entry.name, lambda n=entry.name: mmdemo.load(n, device="cuda"),
                        entry.factory.startswith("mmdemo.models.hub")))
    from test_hub import BUILDERS       # tiny random configs of every hub family, saved with save_pretrained

    for name, save in BUILDERS.items():
        save(tiny_root / name)
        folder = tiny_root / name / "model" if name == "vit-bert" else tiny_root / name
        out.append((f"tiny-{name}", lambda f=folder: mmdemo.load(str(f), device="cuda"), True))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured")
        return 0
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (384, 384, 3), dtype=np.uint8)) for _ in range(args.batch)]
    results, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for label, load, hub in candidates(Path(tmp)):
            for dtype in (torch.float32, torch.bfloat16):
                r: dict = {"name": label, "requested_dtype": str(dtype).replace("torch.", "")}
                try:
                    model = build(load, dtype, hub)
                except Exception as e:  # noqa: BLE001
                    r["errors"] = {"load": f"{type(e).__name__}: {e}"}
                    results.append(r)
                    continue
                r |= measure(model, images, args.runs, None if hub or dtype == torch.float32 else dtype)
                results.append(r)
                for k, v in r.items():
                    if k.endswith(("_ms", "_per_s")):
                        rows.append((f"{label} {r['requested_dtype']} {k}", str(v)))
                del model
                torch.cuda.empty_cache()
    path = write("gpu_check", {"batch": args.batch, "runs": args.runs, "results": results})
    table(rows)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
