"""`occlusion`: the score drop when one patch is replaced by the baseline (Captum Occlusion, patch-sized windows)."""
from __future__ import annotations

import torch
from captum.attr import Occlusion

from ...models.base import ExplainInputs
from .._forward import ScoreFunction, image_baseline, max_rows, pool_to_grid
from .._method import MapMethod
from .._registry import register


@register
class OcclusionMap(MapMethod):
    name = "occlusion"
    summary = "score(image) - score(image with the patch replaced by the baseline), one window per patch"

    def attribute(self, inputs: ExplainInputs, *, baseline: str | float = "median",
                  perturbations_per_eval: int | None = None) -> torch.Tensor:
        fn = ScoreFunction(self.model, inputs)
        H, W = inputs.pixels.shape[-2:]
        window = (inputs.pixels.shape[1], H // self.grid[0], W // self.grid[1])
        per_eval = perturbations_per_eval or max(1, max_rows(fn) // fn.batch)
        attr = Occlusion(fn).attribute(inputs.pixels, sliding_window_shapes=window, strides=window,
                                       baselines=image_baseline(inputs.pixels, baseline, self.grid),
                                       perturbations_per_eval=per_eval)           # (B, 3, H, W)
        return pool_to_grid(attr, self.grid, reduce="mean")
