"""`shapley`: Shapley values of the image patches (Captum ShapleyValueSampling, one feature per patch)."""
from __future__ import annotations

import torch
from captum.attr import ShapleyValueSampling

from ...models.base import ExplainInputs
from .. import _fusion
from .._forward import ScoreFunction, image_baseline, max_rows, patch_mask, pool_to_grid
from .occlusion import regions_for
from .._method import MapMethod
from .._registry import register


@register
class ShapleyMap(MapMethod):
    name = "shapley"
    summary = "Shapley values of the patches, sampled over random orders; absent patches take the baseline"

    def attribute(self, inputs: ExplainInputs, *, samples: int = 8, baseline: str | float = "median",
                  perturbations_per_eval: int | None = None, seed: int = 0,
                  regions: tuple[int, int] | None = None, at: str | None = None) -> torch.Tensor:
        """`regions`: one feature per cell of a coarser (rows, cols) grid of patches (None: each patch on grids up
        to 8×8, an 8×8 grid of regions on larger ones); `at`: "fusion" (the encoded image's tokens; the default
        where the model has them) or "pixels"."""
        regions = regions_for(regions, self.grid)
        fusion = _fusion.fusion_of(self.model, at, "pixels")
        if fusion is not None:
            return self.to_grid(_fusion.shapley(fusion, inputs, regions=regions, samples=samples,
                                                baseline=baseline, grid=self.grid, seed=seed))
        fn = ScoreFunction(self.model, inputs)
        per_eval = perturbations_per_eval or max(1, max_rows(fn) // fn.batch)
        with torch.random.fork_rng(devices=[]):                           # Captum samples orders with torch's RNG
            torch.manual_seed(seed)
            attr = ShapleyValueSampling(fn).attribute(
                inputs.pixels, baselines=image_baseline(inputs.pixels, baseline, self.grid),
                feature_mask=patch_mask(inputs.pixels, self.grid, regions), n_samples=int(samples),
                perturbations_per_eval=per_eval)                                  # (B, 3, H, W)
        return pool_to_grid(attr, self.grid, reduce="mean")
