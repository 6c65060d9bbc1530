"""`ig-pixels`: Integrated Gradients on the pixels (Captum IntegratedGradients), pooled onto the patch grid."""
from __future__ import annotations

import torch
from captum.attr import IntegratedGradients

from ...models.base import ExplainInputs
from .._forward import ScoreFunction, image_baseline, max_rows, pool_to_grid
from .._method import MapMethod
from .._registry import register


@register
class PixelIntegratedGradientsMap(MapMethod):
    name = "ig-pixels"
    summary = "Integrated Gradients on the pixels from a baseline image, summed per patch"

    def attribute(self, inputs: ExplainInputs, *, steps: int = 32, baseline: str | float = "median",
                  internal_batch_size: int | None = None, method: str = "gausslegendre") -> torch.Tensor:
        fn = ScoreFunction(self.model, inputs)
        rows = max_rows(fn, internal_batch_size)
        attr = IntegratedGradients(fn).attribute(
            inputs.pixels, baselines=image_baseline(inputs.pixels, baseline, self.grid), n_steps=int(steps),
            method=method, internal_batch_size=max(rows, fn.batch))                 # (B, 3, H, W)
        return pool_to_grid(attr, self.grid)
