"""Captions, answers and explanations of the hub families at full size with random weights (no download), on a
CPU with 2 threads (or CUDA): BLIP-base caption and VQA, ViLT-B/32, GIT-base, ViT-GPT2. Writes
benchmarks/results/hub.json (or --out NAME).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_hub.py [--models blip-caption,vilt,...] [--device cpu|cuda]
        [--threads 2] [--out hub]

Each model is built once per run from its published configuration values (BlipConfig() and friends hold the base
sizes; BLIP's text decoder has 12 heads as in Salesforce/blip-image-captioning-base/config.json, the class default
is 8), saved with `save_pretrained` next to a tokenizer and an image processor in a temporary folder, and loaded
through `mmdemo.load(folder)` as a user's folder would be. Random weights give the real architectures' cost; the
captions they write are nonsense, so generation is forced to 20 tokens (min_new_tokens = max_new_tokens).
Methods too slow to finish (the per-patch perturbation methods of older code) are estimated from the time of one
batch of the score function times the number of evaluations they need, and marked "estimated".
"""
from __future__ import annotations

import argparse
import inspect
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing
from _common import table, write  # noqa: E402

TOKENS = 20
QUESTION = "what is the man holding in his hand?"
REGIONS = (6, 6)                 # coarse region grid of the perturbation methods
ANSWER = "answer7"


# --- full-size checkpoints with random weights ----------------------------------------------------------------
def bert_tokenizer(size: int, specials: dict[int, str], bos: str | None = None, extra: tuple[str, ...] = ()):
    """A BERT-sized WordPiece vocabulary: the real special-token ids, a few real words, filler elsewhere."""
    from transformers import BertTokenizer

    words = QUESTION.replace("?", "").split() + ["?", "a", "the", ANSWER, *extra]
    vocab = {w: 1000 + i for i, w in enumerate(dict.fromkeys(words))}
    vocab |= {tok: i for i, tok in specials.items()}
    taken = set(vocab.values())
    vocab |= {f"w{i}": i for i in range(size) if i not in taken}
    tok = BertTokenizer(vocab=vocab)
    if bos:
        tok.add_special_tokens({"bos_token": bos, "additional_special_tokens": ["[ENC]"]})
    return tok


BERT_SPECIALS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}


def blip_config():
    """The published sizes. The vision tower's initializer_range (1e-10 in the config: it only matters for
    initialisation) is 0.02 here, as elsewhere: weights of 1e-10 give near-constant image tokens and denormal
    numbers, which no trained checkpoint has and which slow a CPU down several-fold."""
    from transformers import BlipConfig

    return BlipConfig(text_config={"num_attention_heads": 12}, vision_config={"initializer_range": 0.02})


def save_blip_caption(folder: Path) -> None:
    import torch
    from transformers import BlipForConditionalGeneration, BlipImageProcessor

    config = blip_config()
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    bert_tokenizer(config.text_config.vocab_size, BERT_SPECIALS | {30522: "[DEC]", 30523: "[ENC]"},
                   bos="[DEC]").save_pretrained(folder)
    BlipImageProcessor().save_pretrained(folder)                  # 384×384, as the published processor


def save_blip_vqa(folder: Path) -> None:
    import torch
    from transformers import BlipForQuestionAnswering, BlipImageProcessor

    config = blip_config()
    torch.manual_seed(0)
    BlipForQuestionAnswering(config).save_pretrained(folder)
    bert_tokenizer(config.text_config.vocab_size, BERT_SPECIALS | {30522: "[DEC]", 30523: "[ENC]"},
                   bos="[DEC]").save_pretrained(folder)
    BlipImageProcessor().save_pretrained(folder)


def save_vilt(folder: Path) -> None:
    """ViltConfig() defaults are vilt-b32-finetuned-vqa's sizes (ViT-B/32 at 384 px); 3,129 VQAv2 answers."""
    import torch
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor

    labels = {i: f"answer{i}" for i in range(3129)}
    config = ViltConfig(num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    ViltForQuestionAnswering(config).save_pretrained(folder)
    bert_tokenizer(config.vocab_size, BERT_SPECIALS).save_pretrained(folder)
    ViltImageProcessor().save_pretrained(folder)


def save_git(folder: Path) -> None:
    """GitConfig() defaults are git-base's sizes: CLIP ViT-B/16 at 224 px, a 6-layer BERT-base-wide decoder."""
    import torch
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM

    config = GitConfig()
    torch.manual_seed(0)
    GitForCausalLM(config).save_pretrained(folder)
    bert_tokenizer(config.vocab_size, BERT_SPECIALS).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(folder)


def byte_alphabet() -> list[str]:
    """GPT-2's 256 byte-level symbols (printable bytes as themselves, the others shifted past 255)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def save_vit_gpt2(folder: Path) -> None:
    """nlpconnect/vit-gpt2-image-captioning's sizes: ViT-B/16 at 224 px, GPT-2 (12 layers) with cross-attention."""
    import torch
    from transformers import (GPT2Config, GPT2Tokenizer, ViTConfig, ViTImageProcessor, VisionEncoderDecoderConfig,
                              VisionEncoderDecoderModel)
    chars = byte_alphabet()
    vocab = {c: i for i, c in enumerate(chars)} | {f"w{i}": i for i in range(len(chars), 50256)}
    vocab["<|endoftext|>"] = 50256
    tmp = folder / "_vocab"
    tmp.mkdir(parents=True)
    import json
    (tmp / "vocab.json").write_text(json.dumps(vocab))
    (tmp / "merges.txt").write_text("#version: 0.2\n")
    tok = GPT2Tokenizer(str(tmp / "vocab.json"), str(tmp / "merges.txt"))
    end = 50256
    decoder = GPT2Config(bos_token_id=end, eos_token_id=end, is_decoder=True, add_cross_attention=True)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(ViTConfig(), decoder)
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = end
    torch.manual_seed(0)
    VisionEncoderDecoderModel(config=config).save_pretrained(folder)
    tok.save_pretrained(folder)
    ViTImageProcessor().save_pretrained(folder)


BUILDERS = {"blip-caption": save_blip_caption, "blip-vqa": save_blip_vqa, "vilt": save_vilt, "git": save_git,
            "vit-gpt2": save_vit_gpt2}
FULL = {"blip-caption", "vilt"}
MEASURE_SHEETS = False                   # --measure-sheets: run per-token sheets (relevance) rather than n × one          # every method; the others: the task, attention, relevance, IG-16


# --- timing ---------------------------------------------------------------------------------------------------
CPU_SECONDS: list[float] = []          # process CPU seconds of the last `timed` call (per run)


def timed(fn, runs: int = 1):
    """(median wall seconds, last result) of fn() over `runs` calls; the median CPU seconds go to CPU_SECONDS.

    CPU seconds / threads is what the wall time would be on an otherwise idle machine (run with
    OMP_WAIT_POLICY=PASSIVE so waiting threads do not spin): the machine these numbers come from is shared."""
    times, cpu, out = [], [], None
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    CPU_SECONDS[:] = [float(np.median(cpu))]
    return float(np.median(times)), out


def takes(method: str, model, option: str) -> bool:
    from mmdemo.explain import method_for

    return option in inspect.signature(method_for(method, model).attribute).parameters


def estimate(model, image, target, evaluations: int, rows: int = 8) -> float:
    """Seconds for `evaluations` forward passes of the score function, from one batch of `rows`."""
    import torch

    from mmdemo.explain._forward import ScoreFunction
    from mmdemo.explain.engine import gradients

    with gradients(model), torch.no_grad():
        inputs = model.prepare([image], [target])
        fn = ScoreFunction(model, inputs)
        pixels = fn.expand(rows).pixels
        fn(pixels[:1])
        t, c = time.perf_counter(), time.process_time()
        fn(pixels)
        CPU_SECONDS[:] = [(time.process_time() - c) / rows * evaluations]
        return (time.perf_counter() - t) / rows * evaluations


def measure(name: str, model, image, rows: list, results: dict, full: bool) -> None:
    from mmdemo.explain import available_methods, explain, modality_share
    from mmdemo.models.base import Decoding, Target

    methods = available_methods(model)
    r: dict = {"model": model.info.name, "patch_grid": list(model.info.patch_grid)}
    results[name] = r

    def note(what: str, seconds: float, extra: str = "", cpu: float | None = None) -> None:
        cpu = CPU_SECONDS.pop() if cpu is None and CPU_SECONDS else cpu
        r[what] = {"wall_s": round(seconds, 3), "cpu_s": round(cpu, 3) if cpu is not None else None}
        idle = f", cpu {cpu:.2f} s" if cpu is not None else ""
        rows.append((f"{name}: {what}", f"{seconds:.2f} s wall{idle}{extra}"))
        print(f"{name}: {what} {seconds:.2f} s wall{idle}{extra}", flush=True)

    if "caption" in model.info.tasks:
        generate = model._generate      # force TOKENS tokens: random weights may end a caption at any step

        def forced(pixels, prompt, **kw):
            return generate(pixels, prompt, **{**kw, "min_new_tokens": TOKENS})

        model._generate = forced
        decoding = Decoding(max_new_tokens=TOKENS)
        fusion = getattr(model, "fusion_input", lambda: None)()

        def cold() -> list:
            """A caption of an image the model has not seen: no encoded image in its cache."""
            if fusion is not None:
                fusion.clear()
            return model.caption([image], decoding)

        cold()                                                   # warm-up
        s, caps = timed(cold, runs=3)
        note("caption", s)
        text = caps[0].text
        n = len(model.prepare([image], [Target("caption", text)]).text_tokens[0])
        r["caption_tokens"] = n
        target = Target("token", text, token=min(5, n - 1))
        every = [Target("token", text, token=i) for i in range(n)]
    else:
        model.answer([image], [QUESTION])
        s, _ = timed(lambda: model.answer([image], [QUESTION]), runs=3)
        note("answer", s)
        target = Target("answer", ANSWER, question=QUESTION)
        every = [target]

    sheet = getattr(__import__("mmdemo.explain", fromlist=["x"]), "explain_tokens", None)

    def run_sheet(method: str, **options):
        if sheet is not None and len(every) > 1:
            return sheet(model, image, every[0].text, method, cache=False, **options)
        return [explain(model, image, t, method, cache=False, **options) for t in every]

    def sheet_of(method: str, one: float) -> None:
        """The whole caption's sheet: measured where there is a sheet call that reads every token off one pass
        (or with --measure-sheets), else n × one token (estimated)."""
        if sheet is not None and (method == "attention" or MEASURE_SHEETS):
            note(f"{method} sheet ({len(every)} tokens)", timed(lambda: run_sheet(method))[0])
        else:
            r[f"{method}_sheet_estimated"] = True
            note(f"{method} sheet ({len(every)} tokens, estimated: n × one token)", one * len(every),
                 cpu=r[f"{method} (one token)"]["cpu_s"] * len(every))

    explain(model, image, target, "attention", cache=False)      # warm-up of the explanation path
    if "attention" in methods:
        s = timed(lambda: explain(model, image, target, "attention", cache=False))[0]
        note("attention (one token)", s)
        if len(every) > 1:
            sheet_of("attention", s)
    if "relevance" in methods:
        s, auto = timed(lambda: explain(model, image, target, "relevance", cache=False))
        note("relevance (one token)", s)
        s, exact = timed(lambda: explain(model, image, target, "relevance", cache=False, precision="fp32"))
        r["relevance_auto_vs_fp32_r"] = round(float(np.corrcoef(auto.raw.ravel(), exact.raw.ravel())[0, 1]), 5)
        note("relevance fp32 (one token)", s, f"  (the default's map vs fp32: r = {r['relevance_auto_vs_fp32_r']})")
        if len(every) > 1 and full:
            sheet_of("relevance", s)
    from mmdemo.explain._forward import ScoreFunction, image_baseline
    from mmdemo.explain.engine import gradients
    import torch

    fusion = getattr(model, "fusion_input", lambda: None)()

    def ig_total(steps: int) -> float:
        """IG as the `ig` method computes it, summed over every token it attributes (CLS included)."""
        if fusion is None:
            return float(np.sum(explain(model, image, target, "ig", cache=False, steps=steps).raw))
        from mmdemo.explain._fusion import integrated_gradients

        with gradients(model):
            inputs = model.prepare([image], [target])
            return float(integrated_gradients(fusion, inputs, steps=steps, baseline="median",
                                              grid=model.info.patch_grid).sum())

    cheap = fusion is not None or model.info.patch_grid[0] * model.info.patch_grid[1] <= 256   # ViLT: 144 patches
    for steps in (((8, 16, 32) if cheap else (16, 32)) if full else (16,)):
        s, total = timed(lambda: ig_total(steps))
        with gradients(model), torch.no_grad():
            inputs = model.prepare([image], [target])
            fn = ScoreFunction(model, inputs)
            gap = float(fn(inputs.pixels) - fn(image_baseline(inputs.pixels, "median")))
        err = abs(total - gap) / max(abs(gap), 1e-12)
        r[f"ig{steps}_completeness_error"] = round(err, 4)
        note(f"ig-{steps} (one {'token' if len(every) > 1 else 'answer'})", s, f"  (completeness error {err:.1%})")
    if not full:
        return
    G = REGIONS[0] * REGIONS[1]
    if takes("occlusion", model, "regions"):
        note(f"occlusion {REGIONS[0]}x{REGIONS[1]} (one token)",
             timed(lambda: explain(model, image, target, "occlusion", cache=False, regions=REGIONS))[0])
    else:
        h, w = model.info.patch_grid
        s = estimate(model, image, target, h * w + 1)
        r["occlusion_estimated"] = True
        note(f"occlusion per patch {h}x{w} (one token, estimated)", s)
    if takes("shapley", model, "regions"):
        note(f"shapley {REGIONS[0]}x{REGIONS[1]}, 4 samples (one token)",
             timed(lambda: explain(model, image, target, "shapley", cache=False, regions=REGIONS, samples=4))[0])
    else:
        h, w = model.info.patch_grid
        s = estimate(model, image, target, 4 * (h * w) + 1)
        r["shapley_estimated"] = True
        note(f"shapley per patch {h}x{w}, 4 samples (one token, estimated)", s)
    words = len(model.prepare([image], [target]).text_tokens[0])
    s, share = timed(lambda: modality_share(model, image, target, samples=2, regions=(4, 4), cache=False))
    note("modality share (4x4 regions + words, 2 samples)", s, f"  (image share {share['image_share']:.2f})")


def matmul_gflops(threads: int) -> float:
    """fp32 matmul throughput of this machine (GFLOP/s), a 1024³ product."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    return 10 * 2 * 1024 ** 3 / (time.perf_counter() - t) / 1e9


def main() -> None:
    import torch
    from PIL import Image

    import mmdemo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(BUILDERS), help=f"comma-separated, from {', '.join(BUILDERS)}")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="hub")
    ap.add_argument("--note", default="", help="a remark kept with the results (e.g. the machine's load)")
    ap.add_argument("--measure-sheets", action="store_true", help="time per-token sheets instead of n × one token")
    args = ap.parse_args()
    global MEASURE_SHEETS
    MEASURE_SHEETS = args.measure_sheets
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)      # random weights must not time denormal arithmetic (trained ones rarely hit it)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8))
    load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else []
    results: dict = {}
    rows: list = []
    gflops = matmul_gflops(args.threads)
    rows.append(("fp32 matmul 1024³", f"{gflops:.0f} GFLOP/s"))
    with tempfile.TemporaryDirectory() as root:
        for name in names:
            folder = Path(root) / name
            t = time.perf_counter()
            BUILDERS[name](folder)
            model = mmdemo.load(str(folder), device=args.device)
            built = time.perf_counter() - t
            measure(name, model, image, rows, results, full=name in FULL)
            results[name]["build_s"] = round(built, 1)
            del model
            path = write(args.out, {"note": args.note, "threads": args.threads, "device": args.device,
                                    "loadavg_at_start": load,
                                    "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
                                    "matmul_gflops": round(gflops, 1), "results": results})   # after each model
    table(rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
