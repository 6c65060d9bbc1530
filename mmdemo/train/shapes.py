"""Train a shapes model (early, cross or late fusion) on the shapes world: seeded, resumable, tqdm progress."""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..models.shapes import weights
from ..models.shapes.net import ShapesConfig, ShapesNet, losses
from ..models.shapes.tokenizer import vocabulary
from ..world.vocab import ANSWERS
from .config import TrainConfig
from .data import Pool, QuestionSampler, make_pool

TRAIN_SEED = 1            # views for training are seeded (TRAIN_SEED, i); evaluation uses other seeds


def _pool(cfg: TrainConfig, net_cfg: ShapesConfig) -> Pool:
    """The rendered training views, cached under run_dir (shared by every variant: same seeds, same views)."""
    cache = Path(cfg.run_dir) / f"pool-{cfg.pool}-{net_cfg.image_size}.pt"
    if cache.exists():
        return torch.load(cache, weights_only=False)
    pool = make_pool(cfg.pool, TRAIN_SEED, size=net_cfg.image_size, grid=net_cfg.grid)
    torch.save(pool, cache)
    return pool


def _load_init(net: ShapesNet, folder: Path) -> list[str]:
    """Start from a trained model's weights; return the names of the parameters left at their fresh values.

    Same fusion: every tensor must fit, except the coordinate readout (which starts silent). Another fusion
    (e.g. shapes-early from shapes-cross): the encoders, embeddings and heads carry over; tensors only one of
    the two has (cross-attention, pooling) are skipped."""
    source = weights.load_net(folder)
    theirs, ours = source.state_dict(), net.state_dict()
    fits = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    fresh = sorted(set(ours) - set(fits))
    if source.cfg.fusion == net.cfg.fusion:
        misfit = [k for k in fresh if "coord_out" not in k] + sorted(set(theirs) - set(fits))
        if misfit:
            raise ValueError(f"{folder} does not fit this model: {', '.join(misfit[:8])}")
    net.load_state_dict(fits, strict=False)
    return fresh


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def train(cfg: TrainConfig, net_cfg: ShapesConfig | None = None, *, resume: bool = True) -> Path:
    from tqdm import tqdm

    from .evaluate import evaluate_net

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    net_cfg = net_cfg or ShapesConfig(fusion=cfg.fusion, vocab_size=len(vocabulary()), n_answers=len(ANSWERS),
                                      readout=cfg.readout)
    run = Path(cfg.run_dir) / f"shapes-{cfg.fusion}{'-' + Path(cfg.init).name + '-tuned' if cfg.init else ''}"
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    net = ShapesNet(net_cfg)
    decay = [p for n, p in net.named_parameters() if p.ndim >= 2 and "pos" not in n]
    no_decay = [p for n, p in net.named_parameters() if not (p.ndim >= 2 and "pos" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    if cfg.init:
        fresh = _load_init(net, Path(cfg.init))
        print(f"initialised from {cfg.init}" + (f"; fresh: {', '.join(fresh)}" if fresh else ""))
    sampler = QuestionSampler(cfg.seed, tuple(cfg.focus), cfg.focus_share)
    order_rng = np.random.default_rng(cfg.seed + 1)
    step, ckpt = 0, run / "checkpoint.pt"
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sampler.rng.bit_generator.state = state["sampler_rng"]
        order_rng.bit_generator.state = state["order_rng"]
        step = state["step"]
        print(f"resumed from {ckpt} at step {step}")
    pool = _pool(cfg, net_cfg)
    N = len(pool.scenes)
    started, seen = time.time(), 0
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train shapes-{cfg.fusion}")
    net.train()
    while step < cfg.steps:
        idx = torch.from_numpy(order_rng.integers(0, N, size=cfg.batch))
        pixels = pool.pixels[idx].float().div_(255)
        q_ids, answers = sampler.batch([pool.scenes[i] for i in idx.tolist() for _ in range(cfg.questions)])
        caps = pool.captions[idx]
        caps = caps[:, : int((caps != 0).sum(1).max())]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        parts = losses(net, pixels, q_ids, answers, caps, pool.patch_labels[idx])
        loss = parts["vqa"] + parts["lm"] + 0.5 * parts["aux"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        seen += cfg.batch
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix({k: f"{v.item():.3f}" for k, v in parts.items()})
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step,
                        "sampler_rng": sampler.rng.bit_generator.state,
                        "order_rng": order_rng.bit_generator.state}, ckpt.with_suffix(".tmp"))
            ckpt.with_suffix(".tmp").replace(ckpt)
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
            net.eval()
            report = evaluate_net(net, n=200, seed=7, progress=False)
            bar.write(f"step {step}: vqa {report['vqa_accuracy']:.3f} caption exact {report['caption_exact']:.3f} "
                      f"f1 {report['mention_f1']:.3f} | " +
                      " ".join(f"{k} {v:.2f}" for k, v in report["vqa_by_type"].items()))
            net.train()
    bar.close()
    net.eval()
    out = Path(cfg.out) if cfg.out else weights.model_dir(f"shapes-{cfg.fusion}")
    meta = asdict(cfg) | {"train_seconds_this_run": round(time.time() - started, 1),
                          "samples_seen_this_run": seen, "torch": torch.__version__}
    if cfg.init:  # keep the recipe of the stage this one started from
        meta["init_training"] = json.loads((Path(cfg.init) / "config.json").read_text()).get("training")
    weights.save(net, out, meta)
    return out
