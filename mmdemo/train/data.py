"""Training data from the shapes world: a pool of rendered views, fresh questions drawn every step."""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import numpy as np
import torch

from ..models.shapes.preprocess import pad_ids, to_pixels
from ..models.shapes.tokenizer import build_tokenizer
from ..world.language import all_questions, caption, sample_question
from ..world.scene import Scene
from ..world.views import patch_labels, random_view
from ..world.vocab import ANSWERS


@dataclass
class Pool:
    pixels: torch.Tensor           # (N, 3, S, S) uint8; empty when `features` stand in for them
    patch_labels: torch.Tensor     # (N, P, 3) int64
    captions: torch.Tensor         # (N, Tc) int64 caption ids, [CLS] … [SEP], 0-padded
    scenes: list[Scene]            # metadata only (masks dropped)
    features: torch.Tensor | None = None   # (N, P, C) float16: a frozen backbone's features of the views

    def inputs(self, idx: torch.Tensor) -> torch.Tensor:
        """What the model's image encoder takes for these views: float pixels in [0, 1] or backbone features."""
        if self.features is not None:
            return self.features[idx].float()
        return self.pixels[idx].float().div_(255)

    def with_features(self, extract, batch: int = 128, progress: bool = True) -> "Pool":
        """The pool with `extract(pixels in [0, 1]) -> (B, P, C)` run once over every view, the pixels dropped."""
        from tqdm import tqdm

        chunks = []
        with torch.inference_mode():
            for s in tqdm(range(0, len(self.scenes), batch), desc="features", disable=not progress):
                chunks.append(extract(self.pixels[s:s + batch].float().div_(255)).half())
        return Pool(self.pixels[:0], self.patch_labels, self.captions, self.scenes, torch.cat(chunks))


def _chunk(args) -> tuple:
    seed, start, count, size, grid, variations = args
    tok = build_tokenizer()
    pixels, labels, caps, scenes = [], [], [], []
    for i in range(start, start + count):
        rng = np.random.default_rng([seed, i])
        scene, image = random_view(rng, variations=variations and (i % 8 != 0))  # 1 in 8 plain 128 px
        pixels.append(to_pixels(image, size))
        labels.append(patch_labels(scene, grid))
        caps.append(tok.encode(caption(scene)).ids)
        scene.masks = None
        scenes.append(scene)
    return np.stack(pixels), np.stack(labels), caps, scenes


def make_pool(n: int, seed: int, *, size: int, grid: int, variations: bool = True, workers: int = 2,
              progress: bool = True) -> Pool:
    """Render n views (seeded by (seed, index), so any slice is reproducible)."""
    from tqdm import tqdm

    step = 500
    jobs = [(seed, s, min(step, n - s), size, grid, variations) for s in range(0, n, step)]
    out = []
    with mp.get_context("fork").Pool(workers) as pool:
        for r in tqdm(pool.imap(_chunk, jobs), total=len(jobs), desc="render", disable=not progress):
            out.append(r)
    pixels = torch.from_numpy(np.concatenate([r[0] for r in out]))
    labels = torch.from_numpy(np.concatenate([r[1] for r in out]))
    caps = [c for r in out for c in r[2]]
    T = max(len(c) for c in caps)
    cap_ids = torch.zeros(len(caps), T, dtype=torch.long)
    for i, c in enumerate(caps):
        cap_ids[i, :len(c)] = torch.tensor(c)
    return Pool(pixels, labels, cap_ids, [s for r in out for s in r[3]])


class QuestionSampler:
    """Draws a question per scene; tokenisation cached (the world has a few thousand distinct questions)."""

    def __init__(self, seed: int, focus: tuple[str, ...] = (), focus_share: float = 0.5):
        self.rng = np.random.default_rng(seed)
        self.focus, self.focus_share = focus, focus_share   # question types drawn more often (a curriculum)
        self.tok = build_tokenizer()
        self.cache: dict[str, list[int]] = {}
        self.answer_index = {a: i for i, a in enumerate(ANSWERS)}

    def ids(self, text: str) -> list[int]:
        if text not in self.cache:
            self.cache[text] = self.tok.encode(text).ids
        return self.cache[text]

    def _type(self, scene: Scene) -> str | None:
        """A focus type this scene supports, focus_share of the time; else None (uniform over types)."""
        if not self.focus or self.rng.random() >= self.focus_share:
            return None
        supported = {q.type for q in all_questions(scene)} & set(self.focus)
        return sorted(supported)[self.rng.integers(len(supported))] if supported else None

    def batch(self, scenes: list[Scene]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) question ids, (B,) answer indices."""
        qs = [sample_question(s, self.rng, self._type(s)) for s in scenes]
        ids = [self.ids(q.text) for q in qs]
        return pad_ids(ids), torch.tensor([self.answer_index[q.answer] for q in qs])
