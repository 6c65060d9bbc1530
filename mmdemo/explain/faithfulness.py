"""Can a map be trusted? Deletion and insertion curves (against random maps), the pointing game and the mass
inside the evidence masks on world scenes, and the model-randomisation check (Adebayo et al. 2018)."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..models.base import Target, VLModel
from ._forward import ScoreFunction, image_baseline, max_rows, prepare
from ._rows import term_count
from .engine import explain, gradients


# --- deletion and insertion --------------------------------------------------------------------------------------
def deletion_insertion(model: VLModel, image: Image.Image, target: Target, grid_map: np.ndarray, *,
                       steps: int | None = None, baseline: str | float = "median", random_maps: int = 3,
                       seed: int = 0) -> dict[str, Any]:
    """Remove patches from the image, most relevant first (deletion), or add them to the baseline image
    (insertion), and follow the target's probability (per token for a whole caption: exp(mean log-prob)).

    Returns {"deletion_auc", "insertion_auc", "fractions", "deletion", "insertion", "random": {the same, mean of
    `random_maps` random orders}}. A faithful map has a lower deletion AUC and a higher insertion AUC than random."""
    grid = tuple(model.info.patch_grid)
    P = grid[0] * grid[1]
    rng = np.random.default_rng(seed)
    orders = np.stack([most_relevant_first(grid_map, rng)] + [rng.permutation(P) for _ in range(random_maps)])
    with gradients(model), torch.no_grad():
        inputs = prepare(model, [image] * len(orders), [target] * len(orders))
        fn = ScoreFunction(model, inputs)
        base = image_baseline(inputs.pixels, baseline, grid)
        fractions, deletion, insertion = curves(fn, inputs.pixels, base, orders, grid, steps or P, term_count(inputs))
    out = {"deletion_auc": auc(fractions, deletion[:, 0]), "insertion_auc": auc(fractions, insertion[:, 0]),
           "fractions": fractions.tolist(), "deletion": deletion[:, 0].tolist(), "insertion": insertion[:, 0].tolist()}
    if random_maps:
        rd, ri = deletion[:, 1:].mean(1), insertion[:, 1:].mean(1)
        out["random"] = {"deletion_auc": auc(fractions, rd), "insertion_auc": auc(fractions, ri),
                         "deletion": rd.tolist(), "insertion": ri.tolist()}
    return out


def random_map(grid: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A random relevance map of the same grid, max 1."""
    m = np.random.default_rng(seed).random(grid).astype(np.float32)
    return m / m.max()


def most_relevant_first(grid_map: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(P,) patch indices, most relevant first; ties in random order."""
    flat = np.asarray(grid_map, dtype=np.float64).reshape(-1)
    return np.lexsort((rng.random(flat.size), -flat))


def curves(fn: ScoreFunction, pixels: torch.Tensor, base: torch.Tensor, orders: np.ndarray, grid: tuple[int, int],
           steps: int, terms: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deletion and insertion curves for B prepared items at once, item b moving patches in orders[b] (B, P).

    Returns the fractions of patches moved (S+1,) and the probabilities (S+1, B) along each curve; every image of
    every step goes through the model in batches of whole steps."""
    B, P = orders.shape
    steps = min(int(steps), P)
    counts = np.round(np.linspace(0, P, steps + 1)).astype(int)                  # (S+1,) patches moved
    rank = np.empty_like(orders)
    np.put_along_axis(rank, orders, np.broadcast_to(np.arange(P), orders.shape).copy(), 1)
    moved = torch.from_numpy(rank[None] < counts[:, None, None]).float().to(pixels.device)   # (S+1, B, P)
    H, W = pixels.shape[-2:]
    mask = F.interpolate(moved.view(-1, 1, *grid), size=(H, W), mode="nearest").view(steps + 1, B, 1, H, W)
    deleted = pixels[None] * (1 - mask) + base[None] * mask                       # (S+1, B, 3, H, W)
    inserted = base[None] * (1 - mask) + pixels[None] * mask
    both = torch.cat([deleted, inserted]).flatten(0, 1)                           # step-major: row j·B + b
    per = max(1, max_rows(fn) // B) * B
    with torch.no_grad():
        scores = torch.cat([fn(both[i:i + per]) for i in range(0, len(both), per)]).view(2 * (steps + 1), B)
    prob = (scores / terms[None]).exp().cpu().numpy()
    return counts / P, prob[: steps + 1], prob[steps + 1:]


def auc(x: np.ndarray, y: np.ndarray) -> float | np.ndarray:
    """Trapezoid area under y (S+1,) or (S+1, B) over x (S+1,)."""
    y = np.asarray(y, dtype=np.float64)
    dx = np.diff(x).reshape(-1, *([1] * (y.ndim - 1)))
    area = ((y[1:] + y[:-1]) / 2 * dx).sum(0)
    return float(area) if np.ndim(area) == 0 else area


# --- localisation on world scenes ---------------------------------------------------------------------------------
def coverage(masks: np.ndarray | Sequence[np.ndarray], grid: tuple[int, int]) -> np.ndarray:
    """(h, w) fraction of each patch cell covered by the union of the (H, W) bool masks."""
    masks = [masks] if isinstance(masks, np.ndarray) and masks.ndim == 2 else list(masks)
    union = np.any(np.stack([np.asarray(m, dtype=bool) for m in masks]), 0).astype(np.float32)
    t = torch.from_numpy(union)[None, None]
    return F.adaptive_avg_pool2d(t, grid)[0, 0].numpy()


def pointing_game(grid_map: np.ndarray, masks: np.ndarray | Sequence[np.ndarray]) -> bool:
    """Hit when the map's most relevant patch touches the evidence (any of `masks`, each (H, W) at the image's
    size). A flat map points nowhere: a miss."""
    m = np.asarray(grid_map, dtype=np.float64)
    if m.max() <= m.min():
        return False
    return bool(coverage(masks, m.shape).reshape(-1)[int(m.argmax())] > 0)


def mass_inside(grid_map: np.ndarray, masks: np.ndarray | Sequence[np.ndarray]) -> float:
    """Share of the (non-negative) relevance that lies inside the evidence masks, each patch counted by the
    fraction of it the masks cover."""
    m = np.clip(np.asarray(grid_map, dtype=np.float64), 0, None)
    total = m.sum()
    return float((m * coverage(masks, m.shape)).sum() / total) if total > 0 else 0.0


def chance(masks: np.ndarray | Sequence[np.ndarray], grid: tuple[int, int]) -> float:
    """The pointing game's chance rate for these masks: the share of patches that touch them."""
    return float((coverage(masks, grid) > 0).mean())


# --- model randomisation ------------------------------------------------------------------------------------------
def randomized_copy(model: VLModel, seed: int = 0) -> VLModel:
    """A deep copy of the model with every weight matrix, embedding and position table redrawn at random
    (normal, each tensor keeping its own scale). The original is not touched."""
    clone = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    for module in {id(m): m for m in vars(clone).values() if isinstance(m, torch.nn.Module)}.values():
        for p in module.parameters():
            if p.dim() >= 2:
                std = float(p.detach().float().std()) or 0.02
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=gen).mul_(std).to(p))
    clone.info = dataclasses.replace(model.info, revision=f"{model.info.revision}-randomized-{seed}")
    return clone


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps (ties share their average rank); 0 when either map is flat."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64).ravel()), _ranks(np.asarray(b, dtype=np.float64).ravel())
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def randomization_check(model: VLModel, image: Image.Image, target: Target, method: str = "ig", *,
                        seed: int = 0, threshold: float = 0.5, **options: Any) -> dict[str, Any]:
    """Explain with the model and with a randomised copy; a map that tracks the model changes.

    {"spearman": rank correlation of the two signed maps, "changed": it is below `threshold`,
     "spearman_abs": the same for |map| (reported, not judged: with a baseline like the empty canvas, |IG| and
     occlusion stay on the objects whatever the weights, which is Adebayo et al.'s point about such maps),
     "original", "randomized": the two relevance grids}."""
    first = explain(model, image, target, method, cache=False, **options)
    second = explain(randomized_copy(model, seed), image, target, method, cache=False, **options)
    rho = spearman(first.raw, second.raw)
    return {"method": method, "spearman": rho, "spearman_abs": spearman(np.abs(first.raw), np.abs(second.raw)),
            "changed": bool(rho < threshold), "original": first.grid, "randomized": second.grid}


def faithfulness_table(model: VLModel, cases: list[tuple[Image.Image, Target, list[np.ndarray]]],
                       methods: list[str], *, steps: int = 16, random_maps: int = 2) -> list[dict[str, Any]]:
    """Per method, over `cases` (image, target, evidence masks): the pointing game (hits on the evidence), deletion
    and insertion AUC against random maps, and milliseconds per map. One row per method."""
    rows = []
    for method in methods:
        hits, curves_, seconds = [], [], []
        for image, target, masks in cases:
            exp = explain(model, image, target, method=method)
            seconds.append(exp.seconds)
            curves_.append(deletion_insertion(model, image, target, exp.grid, steps=steps, random_maps=random_maps))
            if masks:
                hits.append(pointing_game(exp.grid, masks))
        mean = lambda values: round(sum(values) / len(values), 4) if values else None  # noqa: E731
        rows.append({"method": method, "pointing game": mean([float(h) for h in hits]),
                     "deletion AUC": mean([c["deletion_auc"] for c in curves_]),
                     "random deletion AUC": mean([c["random"]["deletion_auc"] for c in curves_]),
                     "insertion AUC": mean([c["insertion_auc"] for c in curves_]),
                     "random insertion AUC": mean([c["random"]["insertion_auc"] for c in curves_]),
                     "ms per map": mean([1000 * s for s in seconds]), "scenes": len(cases)})
    return rows
