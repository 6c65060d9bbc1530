"""The caption-word tables of the README and of each shapes model's card, written from the reports that ship
beside the cards (assets/models/NAME/caption-words.json, made by `eval-explain --target caption-words --save`).

    python benchmarks/caption_words_tables.py [--models shapes-cross,shapes-early,shapes-late]

Each table goes between `<!-- caption-words:NAME:start -->` and `<!-- caption-words:NAME:end -->`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing
from _common import README, replace_between  # noqa: E402

from mmdemo.config import ASSETS  # noqa: E402
from mmdemo.explain.caption_words import markdown_tables  # noqa: E402


def summary(report: dict) -> str:
    kinds = report["words_by_kind"]
    best = report.get("recommended") or {}
    line = (f"**{report['model']}**: {report['words']:,} attribute words ({kinds['colour']:,} colour, "
            f"{kinds['shape']:,} shape, {kinds['size']:,} size) in its correct captions "
            f"({report['captions_correct']:.1%} of {report['scenes']} held-out scenes); pointing by chance "
            f"{report['pointing_chance']['all']:.1%}; a random map's deletion AUC {report['random']['deletion_auc']:.3f}.")
    if best:
        line += (f" Best on colour and shape words alike: {best['method']} ({best['variant']}), "
                 f"{best['colour']:.1%} / {best['shape']:.1%}.")
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="shapes-cross,shapes-early,shapes-late")
    args = ap.parse_args()
    for name in [n.strip() for n in args.models.split(",") if n.strip()]:
        report = json.loads((ASSETS / "models" / name / "caption-words.json").read_text())
        text = summary(report) + "\n\n" + markdown_tables(report)
        start, end = f"<!-- caption-words:{name}:start -->", f"<!-- caption-words:{name}:end -->"
        for doc in (README, ASSETS / "models" / name / "README.md"):
            print(f"{doc}: {'written' if replace_between(start, end, text, doc) else 'no markers'} ({name})")


if __name__ == "__main__":
    main()
