"""Modality share (MM-SHAP, Parcalabescu & Frank 2023): how much of a prediction comes from the image vs the text.

Shapley values over image regions and words together (Captum ShapleyValueSampling); an absent region takes the
baseline image, an absent word a zero embedding. image_share = Σ|φ_image| / (Σ|φ_image| + Σ|φ_text|)."""
from __future__ import annotations

import time
from typing import Any

import torch
from captum.attr import ShapleyValueSampling
from PIL import Image

from ..models.base import Target, VLModel
from ._forward import ScoreFunction, image_baseline, max_rows, patch_mask, prepare, word_features
from .engine import CACHE, cache_key, gradients


def modality_share(model: VLModel, image: Image.Image, target: Target, *, samples: int = 12,
                   regions: tuple[int, int] = (4, 4), baseline: str | float = "median", seed: int = 0,
                   cache: bool = True) -> dict[str, Any]:
    """{"image_share", "text_share"} (summing to 1), plus the Shapley values behind them: "image" per region
    (a `regions` grid, rows of lists), "text" per word [(token, value)], and "seconds". Cached like `explain`."""
    key = cache_key(model, image, target, "modality", samples=samples, regions=regions, baseline=baseline, seed=seed)
    if cache and (hit := CACHE.get(key)) is not None:
        return hit
    result = _share(model, image, target, samples=samples, regions=regions, baseline=baseline, seed=seed)
    if cache:
        CACHE.put(key, result)
    return result


def _share(model: VLModel, image: Image.Image, target: Target, *, samples: int, regions: tuple[int, int],
           baseline: str | float, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    with gradients(model), torch.no_grad():
        inputs = prepare(model, [image], [target])
        fn = ScoreFunction(model, inputs)
        gate = fn.gate
        pixels = inputs.pixels
        h, w = (min(regions[0], model.info.patch_grid[0]), min(regions[1], model.info.patch_grid[1]))
        region = patch_mask(pixels, model.info.patch_grid, (h, w))                      # (1, 1, H, W) in [0, G)
        G, Fn = h * w, gate.n_features
        word = (G + torch.arange(max(Fn, 1), device=pixels.device))[None]              # (1, F) in [G, G+F)
        per_eval = max(1, max_rows(fn) // fn.batch)
        fusion = model.fusion_input()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if fusion is not None:      # regions of the encoded image's tokens: the image encoder runs once
                phi_regions, phi_words = _fused_shapley(fusion, inputs, gate, (h, w), samples=samples,
                                                        baseline=baseline, grid=model.info.patch_grid)
                phi_image = phi_regions[0]
            else:
                phi_pixels, phi_words = ShapleyValueSampling(fn).attribute(
                    (pixels, gate.ones()), baselines=(image_baseline(pixels, baseline, model.info.patch_grid),
                                                      gate.baseline()),
                    feature_mask=(region, word), n_samples=int(samples), perturbations_per_eval=per_eval)
                # every element of a region carries the region's value: read one per region
                phi_image = torch.zeros(G, device=pixels.device).scatter_reduce(
                    0, region.flatten(), phi_pixels[0, 0].flatten().float(), reduce="mean", include_self=False)
    phi_text = phi_words[0, :Fn].float() if Fn else torch.zeros(0)
    a, b = float(phi_image.abs().sum()), float(phi_text.abs().sum())
    share = a / (a + b) if a + b > 0 else 0.5
    return {"image_share": share, "text_share": 1 - share,
            "image": phi_image.reshape(h, w).cpu().tolist(),
            "text": [(tok, float(v)) for (_, tok), v in zip(word_features(inputs)[0], phi_text.cpu().tolist())],
            "seconds": time.perf_counter() - started}


def _fused_shapley(fusion, inputs, gate, regions: tuple[int, int], *, samples: int, baseline: str | float,
                   grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, G) Shapley values of the image regions at the fusion input (absent: the baseline image's tokens) and
    (B, F) of the words (absent: a zero embedding), sampled jointly."""
    from ._fusion import Ends, region_index

    ends = Ends(fusion, inputs, baseline, grid)
    B, N = ends.x.shape[:2]
    region = region_index(grid, regions, N, ends.x.device)                       # (N,), -1: CLS
    G = int(region.max()) + 1
    cls = (region < 0)[None]

    def f(image_gate: torch.Tensor, word_gate: torch.Tensor) -> torch.Tensor:  # (n, G), (n, F), n = k·B
        k = image_gate.shape[0] // B
        per_token = torch.where(cls, 1.0, image_gate[:, region.clamp_min(0)])    # (n, N)
        with gate.applied(word_gate):
            return ends.score(ends.mix(per_token.reshape(k, B, N)), trim=False)

    ones = torch.ones(B, G, device=ends.x.device)
    phi_image, phi_words = ShapleyValueSampling(f).attribute(
        (ones, gate.ones()), baselines=(torch.zeros_like(ones), gate.baseline()), n_samples=int(samples),
        perturbations_per_eval=max(1, ends.rows_per_pass() // B))
    return phi_image.float(), phi_words
