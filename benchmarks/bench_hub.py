"""Latency of the hub adapters at full size with random weights (no download): a 20-token BLIP-base caption and a
ViLT-B/32 answer at 384 px, median of a few runs after warm-up; on CUDA also bf16 and batch-32 throughput.
Writes benchmarks/results/hub.json.

    OMP_NUM_THREADS=2 python benchmarks/bench_hub.py [--device cpu|cuda] [--runs 5]

Random weights give the real architectures' cost (same layers, sizes, vocabulary, 24×24 / 12×12 patch grids);
the captions they write are nonsense, and forcing 20 tokens (min_new_tokens = max_new_tokens = 20) keeps the
work the same as a real 20-token caption.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing
from _common import median_ms, table, write  # noqa: E402

TOKENS = 20
QUESTION = "what is the man holding in his hand?"


def bert_vocab(size: int, specials: dict[int, str]) -> dict[str, int]:
    """A BERT-sized WordPiece vocabulary: the real special-token ids, a few real words, filler elsewhere."""
    words = QUESTION.replace("?", "").split() + ["?", "a", "the"]
    vocab = {w: 1000 + i for i, w in enumerate(dict.fromkeys(words))}
    vocab |= {tok: i for i, tok in specials.items()}
    taken = set(vocab.values())
    vocab |= {f"w{i}": i for i in range(size) if i not in taken}
    return vocab


def blip_base(device: str):
    """BlipConfig() defaults are the blip-image-captioning-base sizes: ViT-B/16 at 384 px, BERT-base decoder."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor

    from mmdemo.models.hub.blip import BlipCaptioner
    from mmdemo.models.hub._base import choose_dtype

    config = BlipConfig()
    specials = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 30522: "[DEC]", 30523: "[ENC]"}
    tok = BertTokenizer(vocab=bert_vocab(config.text_config.vocab_size, specials))
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).to(device, choose_dtype(torch.device(device)))
    return BlipCaptioner(model, tok, BlipImageProcessor(), name="blip-base (random weights)")


def vilt_b32(device: str):
    """ViltConfig() defaults are vilt-b32 sizes (ViT-B/32 at 384 px); 3,129 answers as in the VQAv2 head."""
    import torch
    from transformers import BertTokenizer, ViltConfig, ViltForQuestionAnswering, ViltImageProcessor

    from mmdemo.models.hub.vilt import ViltAnswerer
    from mmdemo.models.hub._base import choose_dtype

    labels = {i: f"answer{i}" for i in range(3129)}
    config = ViltConfig(num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()})
    specials = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}
    tok = BertTokenizer(vocab=bert_vocab(config.vocab_size, specials))
    torch.manual_seed(0)
    model = ViltForQuestionAnswering(config).to(device, choose_dtype(torch.device(device)))
    return ViltAnswerer(model, tok, ViltImageProcessor(), name="vilt-b32 (random weights)")


def throughput(fn, n: int, repeats: int = 3) -> float:
    """Images per second of fn() over n images, after one warm-up call."""
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return repeats * n / (time.perf_counter() - t)


def main() -> None:
    import torch
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32, help="batch size for the GPU throughput runs")
    args = ap.parse_args()
    gpu = args.device.startswith("cuda")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) for _ in range(args.batch)]
    forced = {"min_new_tokens": TOKENS, "max_new_tokens": TOKENS}
    results, rows = [], []

    for build, task in ((blip_base, "caption"), (vilt_b32, "answer")):
        t = time.perf_counter()
        model = build(args.device)
        built = time.perf_counter() - t
        if task == "caption":
            one = lambda: model.caption(images[:1], **forced)                      # noqa: E731
            many = lambda: model.caption(images, **forced)                         # noqa: E731
            assert len(one()[0].tokens) == TOKENS
        else:
            one = lambda: model.answer(images[:1], [QUESTION])                     # noqa: E731
            many = lambda: model.answer(images, [QUESTION] * len(images))          # noqa: E731
        ms = median_ms(one, runs=args.runs, warmup=1)
        r = {"model": model.info.name, "task": task, "device": model.info.device, "dtype": model.info.dtype,
             "input_size": list(model.info.input_size), "patch_grid": list(model.info.patch_grid),
             "tokens": TOKENS if task == "caption" else None, "batch1_median_ms": round(ms, 1),
             "runs": args.runs, "build_s": round(built, 1)}
        what = f"{model.info.name} {task}" + (f" ({TOKENS} tokens)" if task == "caption" else "")
        rows.append((f"{what}, batch 1, {model.info.device} {model.info.dtype}", f"{ms:.0f} ms"))
        if gpu:
            ips = throughput(many, len(images))
            r[f"batch{len(images)}_images_per_s"] = round(ips, 1)
            rows.append((f"{what}, batch {len(images)}, {model.info.device} {model.info.dtype}", f"{ips:.1f} images/s"))
        results.append(r)
        del model
        if gpu:
            torch.cuda.empty_cache()

    note = ("random weights at full size; no GPU on this machine, so no bf16 or batch throughput numbers"
            if not torch.cuda.is_available() else "random weights at full size")
    path = write("hub", {"note": note, "results": results})
    table(rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
