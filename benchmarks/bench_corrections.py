"""Which images to correct first, and how many: fine-tune shapes-cross on simulated corrections of a shifted world.

The shift: scenes of the shapes world drawn in a style shapes-cross never saw (`mmdemo.world.styles`: outlines
instead of filled shapes, or a dark background). A pool of shifted scenes is pre-captioned by the model and put in
a campaign per order (uncertainty: least confident captions first, from the token probabilities; random); a
simulated annotator takes tasks from the queue and corrects each caption to the scene's true one. For 25, 100 and
400 corrections of each order the model is fine-tuned from the store through the code `mmdemo finetune` runs, then
measured on held-out shifted scenes and on the original world, before and after.

    python benchmarks/bench_corrections.py                 # -> results/corrections.{json,md,png} and the README
    python benchmarks/bench_corrections.py --quick         # tiny settings, a smoke test -> runs/corrections-quick/
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from _common import RESULTS, machine, replace_between  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- corrections-study:start -->", "<!-- corrections-study:end -->"
POOL_SEED, HELD_SEED = 20, 21           # shifted scenes: the pool people correct, and the held-out ones


def shifted(n: int, seed: int, style: str) -> list[tuple[str, object]]:
    """n (true caption, image) pairs of the shifted world."""
    import numpy as np

    from mmdemo.world.language import caption
    from mmdemo.world.styles import styled_view

    out = []
    for i in range(n):
        scene, image = styled_view(np.random.default_rng([seed, i]), style)
        out.append((caption(scene), image))
    return out


def score(model, items) -> dict:
    """Greedy captions of the items against their true captions: exact match and mention F1 (shares)."""
    from mmdemo.train.caption_metrics import caption_metrics

    texts = [c.text for s in range(0, len(items), 64) for c in model.caption([im for _, im in items[s:s + 64]])]
    m = caption_metrics(texts, [t for t, _ in items], mentions=True)
    return {"exact": m["exact"], "mention_f1": m["mention_f1"], "chrf": m["chrf"]}


def fill(store, name: str, order: str, pool, outputs, k: int) -> None:
    """A campaign over the whole pool in `order`; the simulated annotator corrects the first k tasks it is given."""
    store.create_campaign(name, model="shapes-cross", order=order, seed=0)
    store.add_tasks(name, [{"image": im, "image_path": f"scene-{i}", "model_output": c.text,
                            "tokens": [t for t, _ in c.tokens], "token_probs": [p for _, p in c.tokens]}
                           for i, ((_, im), c) in enumerate(zip(pool, outputs))])
    for _ in range(k):
        task = store.next_task(name, "simulated")
        truth = pool[int(task.image_path.split("-")[1])][0]
        store.submit_task(task.id, truth, "simulated")


def run(args) -> dict:
    import mmdemo
    from mmdemo.store import open_store
    from mmdemo.train.finetune import FinetuneSettings, corrections_from_store, finetune

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "corrections.json"
    done = json.loads(results_path.read_text()) if results_path.exists() else {}
    settings = {"style": args.style, "pool": args.pool, "held_out": args.held_out, "counts": args.counts,
                "steps": args.steps, "batch": args.batch, "lr": args.lr, "replay": args.replay,
                "original_scenes": args.original_scenes, "seed": 0}
    if done.get("settings") != settings:
        done = {"settings": settings, "runs": {}}
    base = mmdemo.load("shapes-cross")
    pool, held = shifted(args.pool, POOL_SEED, args.style), shifted(args.held_out, HELD_SEED, args.style)
    if "base" not in done:
        from mmdemo.train.evaluate import evaluate

        world = evaluate(base, args.original_scenes, seed=0, progress=False)
        done["base"] = {"shifted": score(base, held), "original": {"caption_exact": world["caption_exact"],
                                                                   "mention_f1": world["mention_f1"],
                                                                   "vqa_accuracy": world["vqa_accuracy"]}}
    outputs = [c for s in range(0, len(pool), 64) for c in base.caption([im for _, im in pool[s:s + 64]])]
    store = open_store(f"sqlite:///{work / 'corrections.db'}")
    started = time.time()
    for order in ("uncertainty", "random"):
        for k in args.counts:
            key = f"{order}/{k}"
            if key in done["runs"]:
                continue
            name = f"{order}-{k}"
            if name not in {c.name for c in store.list_campaigns()}:
                fill(store, name, order, pool, outputs, k)
            out = work / "models" / name
            if out.exists():
                import shutil

                shutil.rmtree(out)
            t = time.time()
            report = finetune("shapes-cross", corrections_from_store(store, campaign=name), out,
                              FinetuneSettings(steps=args.steps, batch=args.batch, lr=args.lr, eval_share=0,
                                               replay=args.replay, original_scenes=args.original_scenes),
                              progress=not args.quiet,
                              command=f"python benchmarks/bench_corrections.py (campaign {name})")
            tuned = mmdemo.load(str(out))
            row = {"order": order, "corrections": k, "seconds": round(time.time() - t, 1),
                   "shifted": score(tuned, held), "original": report["after"]["original"],
                   "folder": str(out)}
            done["runs"][key] = row
            with open(out / "README.md", "a") as card:
                card.write(f"\n## Shifted scenes ({args.style} drawing; benchmarks/bench_corrections.py)\n\n"
                           f"Held-out {args.style} scenes ({args.held_out}): caption exact match "
                           f"{100 * done['base']['shifted']['exact']:.1f} % -> {100 * row['shifted']['exact']:.1f} %, "
                           f"object-mention F1 {100 * done['base']['shifted']['mention_f1']:.1f} % -> "
                           f"{100 * row['shifted']['mention_f1']:.1f} %; in-domain mention F1 of shapes-cross: "
                           f"{100 * done['base']['original']['mention_f1']:.1f} %.\n")
            results_path.write_text(json.dumps(done, indent=2))
            print(f"{key:<18} shifted F1 {row['shifted']['mention_f1']:.3f} exact {row['shifted']['exact']:.3f} | "
                  f"original F1 {row['original']['mention_f1']:.3f} ({row['seconds']:.0f} s; "
                  f"{time.time() - started:.0f} s so far)", flush=True)
    store.close()
    done["ratio"] = ratio(done)
    results_path.write_text(json.dumps(done, indent=2))
    return done


def ratio(done: dict) -> dict:
    """How many corrections uncertainty order needs to reach random order's quality at the most corrections."""
    counts = done["settings"]["counts"]
    top = max(counts)
    goal = done["runs"].get(f"random/{top}", {}).get("shifted", {}).get("mention_f1")
    if goal is None:
        return {}
    reached = [k for k in sorted(counts) if done["runs"].get(f"uncertainty/{k}", {}).get("shifted", {})
               .get("mention_f1", -1) >= goal]
    first = reached[0] if reached else None
    return {"random_corrections": top, "random_mention_f1": goal, "uncertainty_corrections": first,
            "ratio": None if first is None else first / top}


def table(done: dict) -> str:
    b = done["base"]
    s = done["settings"]
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = [f"Shift: **{s['style']}** drawing. shapes-cross before fine-tuning: shifted scenes exact "
             f"{pct(b['shifted']['exact'])} %, mention F1 {pct(b['shifted']['mention_f1'])} %; original world exact "
             f"{pct(b['original']['caption_exact'])} %, mention F1 {pct(b['original']['mention_f1'])} % "
             f"(in-domain target: shifted F1 ≥ {pct(b['original']['mention_f1'] - 0.10)} %).", "",
             "| order | corrections | shifted exact | shifted mention F1 | original exact | original mention F1 | "
             "original VQA | seconds |", "|---|---|---|---|---|---|---|---|",
             f"| (before) | 0 | {pct(b['shifted']['exact'])} % | {pct(b['shifted']['mention_f1'])} % | "
             f"{pct(b['original']['caption_exact'])} % | {pct(b['original']['mention_f1'])} % | "
             f"{pct(b['original']['vqa_accuracy'])} % | |"]
    for key, r in done["runs"].items():
        lines.append(f"| {r['order']} | {r['corrections']} | {pct(r['shifted']['exact'])} % | "
                     f"{pct(r['shifted']['mention_f1'])} % | {pct(r['original']['caption_exact'])} % | "
                     f"{pct(r['original']['mention_f1'])} % | {pct(r['original']['vqa_accuracy'])} % | "
                     f"{r['seconds']:.0f} |")
    q = done.get("ratio") or {}
    if q:
        lines += ["", f"Uncertainty order reaches random order's {q['random_corrections']}-correction mention F1 "
                      f"({pct(q['random_mention_f1'])} %) with "
                  + (f"{q['uncertainty_corrections']} corrections (ratio {q['ratio']:.2f})."
                     if q["uncertainty_corrections"] else "none of the measured counts (ratio > 1).")]
    return "\n".join(lines)


def plot(done: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, where, title in ((axes[0], "shifted", f"held-out {done['settings']['style']} scenes"),
                             (axes[1], "original", "original world")):
        for order, colour in (("uncertainty", "tab:red"), ("random", "tab:blue")):
            pts = sorted((r["corrections"], r[where]["mention_f1"]) for r in done["runs"].values()
                         if r["order"] == order)
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, [100 * y for y in ys], marker="o", color=colour, label=f"{order} order")
        base = done["base"][where]["mention_f1"]
        ax.axhline(100 * base, color="grey", linestyle=":", label="before fine-tuning")
        ax.set_xscale("log")
        ax.set_xticks(done["settings"]["counts"], [str(k) for k in done["settings"]["counts"]])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("corrections")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("caption object-mention F1 (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def update_readme(text: str, readme: Path = README) -> bool:
    """Put `text` between this study's README markers; False when the markers are missing."""
    return replace_between(START, END, text, readme)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny settings (a smoke test); never touches the README")
    p.add_argument("--style", default="outline", choices=("outline", "dark"))
    p.add_argument("--pool", type=int, default=800, help="shifted scenes offered for correction")
    p.add_argument("--held-out", type=int, default=200)
    p.add_argument("--counts", type=int, nargs="+", default=[25, 100, 400])
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--replay", type=float, default=1.0)
    p.add_argument("--original-scenes", type=int, default=200)
    p.add_argument("--work", default=None, help="store, models and results (default runs/corrections[-quick])")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on a shared CPU)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--report", action="store_true", help="redraw the table, plot and README from the results only")
    args = p.parse_args()
    if args.quick:
        args.pool, args.held_out, args.counts, args.steps, args.original_scenes = 12, 6, [2, 4], 3, 6
    args.work = args.work or ("runs/corrections-quick" if args.quick else "runs/corrections")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.work) if args.quick else RESULTS
    if args.report:
        done = json.loads((out / "corrections.json").read_text())
    else:
        done = run(args)
        done |= {"machine": machine(), "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    text = table(done)
    out.mkdir(parents=True, exist_ok=True)
    (out / "corrections.json").write_text(json.dumps(done, indent=2))
    (out / "corrections.md").write_text(text + "\n")
    plot(done, out / "corrections.png")
    print(text)
    if not args.quick and not update_readme(text + "\n\n![corrections study](benchmarks/results/corrections.png)"):
        print("README has no corrections-study markers; the table is in", out / "corrections.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
