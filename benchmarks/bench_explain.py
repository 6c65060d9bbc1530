"""Explanation speed and quality on the embedded model: CPU (or GPU) medians after warm-up, and eval-explain.

    python benchmarks/bench_explain.py                      # shapes-cross on CPU -> benchmarks/results/explain.json
    python benchmarks/bench_explain.py --device cuda        # -> benchmarks/results/explain-cuda.json
    python benchmarks/bench_explain.py --model shapes-late  # -> benchmarks/results/explain-shapes-late.json
    python benchmarks/bench_explain.py --n 0                # timings only (keeps the file's eval-explain table)
    python benchmarks/bench_explain.py --skip-timings       # eval-explain only (keeps the file's timings)

Timings: `attention` against a plain `answer` call; `ig` with 32 steps, batched (all steps in one pass) and with
Captum's internal_batch_size=1 in the same run; `occlusion` batched and one window per pass; `gradcam`; a full
panel (attention, ig, gradcam, occlusion, modality share). Every call bypasses the explanation cache."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from _common import RESULTS, median_ms, table, write  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes-cross")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--n", type=int, default=500, help="eval-explain questions (0: skip)")
    p.add_argument("--methods", nargs="*", default=None, help="eval-explain methods (default: every image map)")
    p.add_argument("--skip-timings", action="store_true", help="only eval-explain (keeps the file's timings)")
    args = p.parse_args()

    import mmdemo

    model = mmdemo.load(args.model, device=args.device)
    name = "explain" + ("" if args.model == "shapes-cross" else f"-{args.model.replace('/', '_')}") + (
        "" if args.device == "cpu" else f"-{args.device.split(':')[0]}")
    previous = json.loads((RESULTS / f"{name}.json").read_text()) if (RESULTS / f"{name}.json").exists() else {}
    if previous.get("revision") != model.info.revision:
        previous = {}                                   # other weights: nothing to keep
    result = {k: v for k, v in previous.items() if k not in ("machine", "measured")}
    result |= {"model": args.model, "revision": model.info.revision, "device": args.device}
    if not args.skip_timings:
        result |= timings(model, args.repeats)
    if args.n:
        result["eval_explain"] = evaluation(model, args.n, args.methods)
    if "eval_explain" in result:
        report = result["eval_explain"]
        best = max(report["methods"].values(), key=lambda r: r["pointing_game"])
        result.setdefault("bars", {})["best pointing game ≥ 90%"] = best["pointing_game"] >= 0.9
        result["bars"]["every deletion AUC < random"] = all(
            m["deletion_auc"] < m["random_deletion_auc"] for m in report["methods"].values())
    print(f"wrote {write(name, result)}")
    return 0


def timings(model, repeats: int) -> dict:
    from mmdemo.explain import explain, modality_share
    from mmdemo.models.base import Target
    from mmdemo.train.evaluate import held_out

    _, image, questions = next(iter(held_out(1, seed=7)))
    q = next(q for q in questions if len(q.evidence) == 1)
    answer = model.answer([image], [q.text])[0].answer
    target = Target("answer", answer, question=q.text)
    load = os.getloadavg()[0]
    r, few = repeats, max(3, repeats // 3)
    t: dict[str, float] = {}
    t["answer_ms"] = median_ms(lambda: model.answer([image], [q.text]), r, 3)
    t["attention_ms"] = median_ms(lambda: explain(model, image, target, "attention", cache=False), r, 3)
    t["ig32_ms"] = median_ms(lambda: explain(model, image, target, "ig", steps=32, cache=False), r, 3)
    t["ig32_ibs1_ms"] = median_ms(lambda: explain(model, image, target, "ig", steps=32, internal_batch_size=1,
                                                  cache=False), few, 1)
    t["occlusion_ms"] = median_ms(lambda: explain(model, image, target, "occlusion", cache=False), r, 3)
    t["occlusion_one_window_per_pass_ms"] = median_ms(
        lambda: explain(model, image, target, "occlusion", perturbations_per_eval=1, cache=False), few, 1)
    t["gradcam_ms"] = median_ms(lambda: explain(model, image, target, "gradcam", cache=False), r, 3)
    t["modality_share_ms"] = median_ms(lambda: modality_share(model, image, target, cache=False), r, 3)

    def panel():
        for m in ("attention", "ig", "gradcam", "occlusion"):
            explain(model, image, target, m, cache=False)
        modality_share(model, image, target, cache=False)
    t["panel_ms"] = median_ms(panel, max(5, r // 2), 2)
    ratios = {"attention_over_answer": t["attention_ms"] / t["answer_ms"],
              "ig_ibs1_over_batched": t["ig32_ibs1_ms"] / t["ig32_ms"],
              "occlusion_one_window_over_batched": t["occlusion_one_window_per_pass_ms"] / t["occlusion_ms"]}
    bars = {"attention ≤ 1.5× answer": ratios["attention_over_answer"] <= 1.5,
            "ig 32 steps ≤ 250 ms": t["ig32_ms"] <= 250, "panel ≤ 1.5 s": t["panel_ms"] <= 1500,
            "batched IG ≥ 5× ibs=1": ratios["ig_ibs1_over_batched"] >= 5}
    print(f"{model.info.name} on {model.info.device} ({torch.get_num_threads()} threads, load {load:.1f} before), "
          f"medians of {r} after warm-up")
    table([(k, f"{v:9.1f} ms") for k, v in t.items()] + [(k, f"{v:9.2f}×") for k, v in ratios.items()]
          + [(k, "met" if v else "MISSED") for k, v in bars.items()])
    return {"question": q.text, "target": answer, "repeats": r, "threads": torch.get_num_threads(),
            "load_average_before": load, "load_average_after": os.getloadavg()[0],
            "timings_ms": t, "ratios": ratios, "bars": bars}


def evaluation(model, n: int, methods) -> dict:
    from mmdemo.cli.explain import format_table
    from mmdemo.explain.evaluate import evaluate_explanations

    started = time.perf_counter()
    report = evaluate_explanations(model, methods, n=n, seed=0, progress=True)
    report["seconds"] = time.perf_counter() - started
    report["load_average_after"] = os.getloadavg()[0]
    print(format_table(report))
    best = max(report["methods"].items(), key=lambda kv: kv[1]["pointing_game"])
    print(f"best: {best[0]} {best[1]['pointing_game']:.1%}; eval took {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    raise SystemExit(main())
