"""Train a shapes model (early, cross or late fusion) on the shapes world: seeded, resumable, tqdm progress."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..models.shapes import weights
from ..models.shapes.net import ShapesConfig, ShapesNet, losses, pretrain_losses
from ..models.shapes.tokenizer import vocabulary
from ..world.vocab import ANSWERS
from .config import TrainConfig
from .data import Pool, QuestionSampler, make_pool
from .loop import adamw, clip_and_step, cosine_lr, save_checkpoint, set_lr

TRAIN_SEED = 1            # views for fine-tuning are seeded (TRAIN_SEED, i); evaluation uses other seeds
PRETRAIN_SEED = 2         # image–caption pairs for pretraining: other views than fine-tuning's
IMAGE_SIZE = {"patch": 64, "efficientnet_lite0": 224}
STAGES = ("pretrain", "finetune")


def _pool(cfg: TrainConfig, net: ShapesNet) -> Pool:
    """The rendered training views, cached under run_dir (shared by every variant: same seeds, same views).
    With a frozen backbone the cache holds its features of the views instead of pixels."""
    net_cfg = net.cfg
    seed = PRETRAIN_SEED if cfg.stage == "pretrain" else TRAIN_SEED
    tags = ("-pretrain" if cfg.stage == "pretrain" else "") + ("" if net_cfg.encoder == "patch" else f"-{net_cfg.encoder}")
    cache = Path(cfg.run_dir) / f"pool-{cfg.pool}-{net_cfg.image_size}{tags}.pt"
    if cache.exists():
        return torch.load(cache, weights_only=False)
    pool = make_pool(cfg.pool, seed, size=net_cfg.image_size, grid=net_cfg.grid)
    if net_cfg.encoder != "patch":
        pool = pool.with_features(net.patch_embed.features)
    torch.save(pool, cache)
    return pool


def net_config(cfg: TrainConfig) -> ShapesConfig:
    return ShapesConfig(fusion=cfg.fusion, vocab_size=len(vocabulary()), n_answers=len(ANSWERS), readout=cfg.readout,
                        encoder=cfg.encoder, image_size=cfg.image_size or IMAGE_SIZE[cfg.encoder])


def run_name(cfg: TrainConfig) -> str:
    """The checkpoint folder's name under run_dir: one per recipe, so runs of different recipes never resume
    each other's checkpoints."""
    name = f"shapes-{cfg.fusion}"
    name += "" if cfg.encoder == "patch" else f"-{cfg.encoder}"
    name += "-pretrain" if cfg.stage == "pretrain" else ""
    name += f"-{Path(cfg.init).name}-tuned" if cfg.init else ""
    name += f"-data{cfg.data_fraction:g}" if cfg.data_fraction < 1 else ""
    return name


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


LOSS_WEIGHTS = {"vqa": 1.0, "lm": 1.0, "aux": 0.5}


def lr_at(step: int, cfg: TrainConfig) -> float:
    return cosine_lr(step, lr=cfg.lr, warmup=cfg.warmup, steps=cfg.steps)


def train(cfg: TrainConfig, net_cfg: ShapesConfig | None = None, *, resume: bool = True) -> Path:
    from tqdm import tqdm

    from .evaluate import evaluate_net

    if cfg.stage not in STAGES:
        raise ValueError(f"stage must be pretrain or finetune, not {cfg.stage!r}")
    if not 0 < cfg.data_fraction <= 1:
        raise ValueError(f"data_fraction must lie in (0, 1], not {cfg.data_fraction}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pretrain = cfg.stage == "pretrain"
    net_cfg = net_cfg or net_config(cfg)
    run = Path(cfg.run_dir) / run_name(cfg)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    net = ShapesNet(net_cfg)
    # image–text matching reads what the answer head reads; pretraining only, not saved with the model
    itm_head = torch.nn.Linear(net.answer_head[0].in_features, 2) if pretrain else None
    if cfg.init:
        fresh = _load_init(net, Path(cfg.init))
        print(f"initialised from {cfg.init}" + (f"; fresh: {', '.join(fresh)}" if fresh else ""))
    elif net_cfg.encoder != "patch":
        net.patch_embed.load_imagenet()
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]   # a frozen backbone stays out
    named += [(f"itm.{n}", p) for n, p in itm_head.named_parameters()] if pretrain else []
    opt = adamw(named, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = QuestionSampler(cfg.seed, tuple(cfg.focus), cfg.focus_share)
    order_rng = np.random.default_rng(cfg.seed + 1)
    masking = torch.Generator().manual_seed(cfg.seed + 2)
    step, ckpt = 0, run / "checkpoint.pt"
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["model"])
        if itm_head is not None:
            itm_head.load_state_dict(state["itm"])
        opt.load_state_dict(state["opt"])
        sampler.rng.bit_generator.state = state["sampler_rng"]
        order_rng.bit_generator.state = state["order_rng"]
        if "masking" in state:                   # checkpoints written before pretraining existed have none
            masking.set_state(state["masking"])
        step = state["step"]
        print(f"resumed from {ckpt} at step {step}")
    pool = _pool(cfg, net)
    N = len(pool.scenes) if pretrain else max(1, round(len(pool.scenes) * cfg.data_fraction))
    started, seen = time.time(), 0
    bar = tqdm(total=cfg.steps, initial=step, desc=f"{cfg.stage} shapes-{cfg.fusion}")
    net.train()
    while step < cfg.steps:
        idx = torch.from_numpy(order_rng.integers(0, N, size=cfg.batch))
        inputs = pool.inputs(idx)
        caps = pool.captions[idx]
        caps = caps[:, : int((caps != 0).sum(1).max())]
        set_lr(opt, lr_at(step, cfg))
        if pretrain:
            parts = pretrain_losses(net, itm_head, inputs, caps, masking, mask_prob=cfg.mask_prob)
            loss = parts["mlm"] + parts["itm"]
        else:
            q_ids, answers = sampler.batch([pool.scenes[i] for i in idx.tolist() for _ in range(cfg.questions)])
            parts = losses(net, inputs, q_ids, answers, caps, pool.patch_labels[idx], parts=tuple(cfg.tasks))
            loss = sum(LOSS_WEIGHTS[k] * v for k, v in parts.items())
        clip_and_step(opt, loss)
        step += 1
        seen += cfg.batch
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix({k: f"{v.item():.3f}" for k, v in parts.items()})
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(ckpt, {"model": net.state_dict(), "itm": itm_head.state_dict() if pretrain else None,
                                   "opt": opt.state_dict(),
                                   "step": step, "sampler_rng": sampler.rng.bit_generator.state,
                                   "order_rng": order_rng.bit_generator.state, "masking": masking.get_state()})
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps and not pretrain:
            net.eval()
            report = evaluate_net(net, n=200, seed=7, progress=False)
            bar.write(f"step {step}: vqa {report['vqa_accuracy']:.3f} caption exact {report['caption_exact']:.3f} "
                      f"f1 {report['mention_f1']:.3f} | " +
                      " ".join(f"{k} {v:.2f}" for k, v in report["vqa_by_type"].items()))
            net.train()
    bar.close()
    net.eval()
    out = Path(cfg.out) if cfg.out else (Path(cfg.run_dir) / "pretrained" / run_name(cfg) if pretrain
                                         else weights.model_dir(f"shapes-{cfg.fusion}"))
    meta = asdict(cfg) | {"train_seconds_this_run": round(time.time() - started, 1),
                          "samples_seen_this_run": seen, "torch": torch.__version__}
    if cfg.init:  # keep the recipe of the stage this one started from
        meta["init_training"] = json.loads((Path(cfg.init) / "config.json").read_text()).get("training")
    weights.save(net, out, meta)
    return out
