"""The transfer study: VQA accuracy against the share of labelled fine-tuning data (1 %, 10 %, 100 %), for each
fusion (early, cross, late), with and without pretraining, with a patch stem trained from scratch and with a
frozen ImageNet EfficientNet-Lite0.

    python benchmarks/bench_transfer.py            # full study -> results/transfer.{json,md,png} and the README
    python benchmarks/bench_transfer.py --quick    # tiny settings, a smoke test -> runs/transfer-quick/

Finished cells are kept in the JSON file, so running it again after an interruption resumes the study."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from _common import RESULTS, machine, replace_between  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- transfer-study:start -->", "<!-- transfer-study:end -->"


def update_readme(text: str, readme: Path = README) -> bool:
    """Put `text` between this study's README markers; False when the markers are missing."""
    return replace_between(START, END, text, readme)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny settings (seconds); never touches the README")
    p.add_argument("--out", default=None, help="folder for transfer.{json,md,png} (default results/, quick: "
                                               "runs/transfer-quick)")
    p.add_argument("--work", default=None, help="pools, checkpoints, models (default runs/transfer[-quick])")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    import torch

    from mmdemo.train.transfer import QUICK, StudySettings, plot, pretraining_table, run_study, table

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else StudySettings()
    name = "transfer-quick" if args.quick else "transfer"
    out = Path(args.out or (f"runs/{name}" if args.quick else RESULTS))
    work = Path(args.work or f"runs/{name}")
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results = out / "transfer.json"
    before = set(json.loads(results.read_text()).get("cells", {})) if results.exists() else set()
    done = run_study(settings, work, results, progress=True)
    if set(done["cells"]) - before:       # a run that only redraws the report keeps the measuring run's record
        done |= {"machine": machine(), "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "wall_seconds_this_run": round(time.time() - started, 1)}
    results.write_text(json.dumps(done, indent=2))
    md = table(done) + "\n\nWhat pretraining taught (masked words of held-out captions, before any fine-tuning):\n\n" + \
        pretraining_table(done)
    (out / "transfer.md").write_text(md + "\n")
    plot(done, out / "transfer.png")
    print(md)
    if not args.quick and out.resolve() == RESULTS.resolve():
        print("README updated" if update_readme(md) else f"README has no {START} … {END} markers")
    print(f"wrote {out}/transfer.json, transfer.md, transfer.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
