"""easy-VQA (PyPI `easy-vqa`, MIT): fine-tune a shapes model on its train split, measure its fixed test split.

easy-VQA's 64-px images hold one shape (circle, rectangle, triangle) in one of eight colours; its questions ask
the shape, the colour, or whether a shape or colour is present. Its words and answers partly lie outside the
shapes world ("rectangle", "teal", "does … contain"), so the model grows: new word embeddings and answer rows
start fresh, everything it shares with the world model starts from it.
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError


@dataclass
class Split:
    pixels: torch.Tensor            # (N_images, 3, 64, 64) uint8
    questions: list[str]
    answers: list[str]
    image_index: np.ndarray         # (N_questions,) row of `pixels` each question is about


def kind(question: str) -> str:
    """easy-VQA's three question forms: 'shape', 'color' or 'yes/no'."""
    q = question.lower()
    if q.startswith(("is ", "does ", "is there", "are ")) or " contain" in q or " present" in q:
        return "yes/no"
    return "color" if "color" in q else "shape"


def load_split(split: str, size: int = 64) -> Split:
    """The package's train or test split, images decoded and resized as the model sees them."""
    try:
        import easy_vqa
    except ImportError as e:
        raise InputError("easy-VQA is not installed: pip install easy-vqa") from e
    from PIL import Image

    from ..models.shapes.preprocess import to_pixels

    if split not in ("train", "test"):
        raise InputError(f"split must be train or test, not {split!r}")
    questions, answers, image_ids = getattr(easy_vqa, f"get_{split}_questions")()
    paths = getattr(easy_vqa, f"get_{split}_image_paths")()
    ids = sorted(paths)
    row = {image_id: i for i, image_id in enumerate(ids)}
    pixels = np.stack([to_pixels(Image.open(paths[i]).convert("RGB"), size) for i in ids])
    return Split(torch.from_numpy(pixels), list(questions), list(answers), np.array([row[i] for i in image_ids]))


def words_of(questions: list[str], answers: list[str]) -> list[str]:
    from ..models.shapes.tokenizer import build_tokenizer

    pre = build_tokenizer().pre_tokenizer
    seen: dict[str, None] = {}
    for text in questions + answers:
        for w, _ in pre.pre_tokenize_str(text.lower()):
            seen.setdefault(w, None)
    return list(seen)


def adapt(net, words: list[str], answers: list[str]):
    """A copy of `net` that also knows `words` and answers with `answers` (in that order).

    Shared word embeddings and the answer rows of answers both label sets hold are copied; the rest start fresh."""
    from ..models.shapes.net import ShapesNet
    from ..models.shapes.tokenizer import vocabulary

    old_vocab, old_labels = vocabulary(net.cfg.extra_words), net.cfg.answer_labels
    extra = tuple(net.cfg.extra_words) + tuple(w for w in words if w not in old_vocab)
    cfg = replace(net.cfg, extra_words=extra, answers=tuple(answers), vocab_size=len(vocabulary(extra)),
                  n_answers=len(answers))
    torch.manual_seed(0)
    new = ShapesNet(cfg)
    theirs, ours = net.state_dict(), new.state_dict()
    for k, v in theirs.items():
        if k in ours and ours[k].shape == v.shape:
            ours[k] = v.clone()
    ours["word_embed.weight"][: len(old_vocab)] = theirs["word_embed.weight"]
    last = f"answer_head.{len(new.answer_head) - 1}"
    for i, a in enumerate(answers):
        if a in old_labels:
            j = old_labels.index(a)
            ours[f"{last}.weight"][i] = theirs[f"{last}.weight"][j]
            ours[f"{last}.bias"][i] = theirs[f"{last}.bias"][j]
    new.load_state_dict(ours)
    return new.eval()


def evaluate(model, split: Split, batch: int = 512) -> dict:
    """Accuracy over the split's questions, overall and per question form, with any model of the protocol."""
    from PIL import Image

    correct, total = Counter(), Counter()
    images = [Image.fromarray(p.permute(1, 2, 0).numpy()) for p in split.pixels]
    for s in range(0, len(split.questions), batch):
        qs = split.questions[s:s + batch]
        got = model.answer([images[i] for i in split.image_index[s:s + batch]], qs, top_k=1)
        for q, a, truth in zip(qs, got, split.answers[s:s + batch]):
            total[kind(q)] += 1
            correct[kind(q)] += a.answer == truth
    return {"accuracy": sum(correct.values()) / max(1, sum(total.values())), "questions": sum(total.values()),
            "by_form": {k: correct[k] / total[k] for k in sorted(total)}}


def finetune(init: str | Path, out: str | Path, *, steps: int = 1500, batch: int = 128, lr: float = 5e-4,
             warmup: int = 100, seed: int = 0, threads: int | None = None, limit: int | None = None,
             progress: bool = True) -> dict:
    """Fine-tune the model folder `init` on easy-VQA's train split; save to `out`; return the test report.

    `limit` keeps only the first questions of each split (smoke tests)."""
    from tqdm import tqdm

    from ..models.shapes import weights
    from ..models.shapes.model import ShapesModel
    from ..models.shapes.preprocess import pad_ids
    from ..models.shapes.tokenizer import build_tokenizer

    if threads:
        torch.set_num_threads(threads)
    started = time.time()
    train, test = load_split("train"), load_split("test")
    if limit:
        train = replace(train, questions=train.questions[:limit], answers=train.answers[:limit],
                        image_index=train.image_index[:limit])
        test = replace(test, questions=test.questions[:limit], answers=test.answers[:limit],
                       image_index=test.image_index[:limit])
    import easy_vqa

    labels = list(easy_vqa.get_answers())
    source = weights.load_net(Path(init))
    net = adapt(source, words_of(train.questions + test.questions, labels), labels)
    tok = build_tokenizer(extra=net.cfg.extra_words)
    q_ids = pad_ids([tok.encode(t).ids for t in train.questions])
    targets = torch.tensor([labels.index(a) for a in train.answers])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    net.train()
    for step in tqdm(range(steps), desc="easy-VQA", disable=not progress):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.from_numpy(rng.integers(0, len(train.questions), size=batch))
        pixels = train.pixels[train.image_index[idx.numpy()]].float().div_(255)
        ids = q_ids[idx][:, : int((q_ids[idx] != 0).sum(1).max())]
        loss = F.cross_entropy(net.answer_logits(net.encode_image(pixels), ids), targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    net.eval()
    seconds = round(time.time() - started, 1)
    weights.save(net, Path(out), {"easy_vqa": {"init": str(init), "steps": steps, "batch": batch, "lr": lr,
                                               "warmup": warmup, "seed": seed, "train_questions":
                                               len(train.questions), "seconds": seconds}})
    model = ShapesModel(weights.load_net(Path(out)), name=Path(out).name)
    report = {"model": Path(out).name, "init": str(init), "fusion": net.cfg.fusion, "steps": steps,
              "batch": batch, "train_seconds": seconds, "test": evaluate(model, test)}
    (Path(out) / "easy-vqa.json").write_text(json.dumps(report, indent=2))
    return report
