"""Why caption words' attention maps miss: the pointing game per fusion layer and per head, against the mean the
`attention` method draws, and against contrastive saliency.

    python benchmarks/bench_caption_word_heads.py [--model shapes-cross] [--n 12]   # -> results/caption_word_heads.json

Every colour, size and shape word of the model's correct captions of n held-out scenes (as `eval-explain --target
caption-words` picks them), explained as a caption token; a hit when the map's peak touches the word's object."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from _common import table, write  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes-cross")
    p.add_argument("--n", type=int, default=12)
    args = p.parse_args()

    import torch

    import mmdemo
    from mmdemo.explain import method_for, pointing_game
    from mmdemo.explain._forward import prepare
    from mmdemo.explain.caption_words import KINDS, caption_words
    from mmdemo.explain.engine import gradients
    from mmdemo.explain.explanation import relevance

    torch.manual_seed(0)
    model = mmdemo.load(args.model, device="cpu")
    words, _ = caption_words(model, args.n)
    kinds = np.array([w.kind for w in words])

    def rate(method: str, contrastive: bool = False, **options) -> dict:
        unit, hits = method_for(method, model), []
        for lo in range(0, len(words), 16):
            chunk = words[lo:lo + 16]
            with gradients(model):
                inputs = prepare(model, [w.image for w in chunk], [w.target(contrastive) for w in chunk])
                raw = unit.attribute(inputs, **options).detach().float().cpu().numpy()
            hits += [pointing_game(relevance(r), w.mask) for r, w in zip(raw, chunk)]
        h = np.array(hits, dtype=float)
        return {k: float(h[kinds == k].mean()) if (kinds == k).any() else None for k in KINDS}

    rows = {"attention (mean of layers and heads)": rate("attention")}
    layers = model.info.attention_layers
    heads = model.attention(model.prepare([words[0].image], [words[0].target()])).shape[2]
    for layer in range(layers):
        rows[f"attention layer {layer}"] = rate("attention", layer=layer)
        for head in range(heads):
            rows[f"attention layer {layer} head {head}"] = rate("attention", layer=layer, head=head)
    rows["saliency"] = rate("saliency")
    rows["saliency, contrastive"] = rate("saliency", True)
    path = write("caption_word_heads", {"model": args.model, "scenes": args.n, "words": len(words),
                                        "words_by_kind": {k: int((kinds == k).sum()) for k in KINDS},
                                        "pointing_game": rows})
    table([(name, "  ".join(f"{k} {v:.0%}" if v is not None else f"{k} —" for k, v in r.items()))
           for name, r in rows.items()])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
