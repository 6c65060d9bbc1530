"""`saliency`: the absolute gradient of the score w.r.t. the pixels (Captum Saliency), summed per patch."""
from __future__ import annotations

import torch
from captum.attr import Saliency

from ...models.base import ExplainInputs
from .._forward import ScoreFunction, pool_to_grid
from .._method import MapMethod
from .._registry import register


@register
class SaliencyMap(MapMethod):
    name = "saliency"
    summary = "absolute pixel gradient (Simonyan et al. 2014), summed per patch"

    def attribute(self, inputs: ExplainInputs) -> torch.Tensor:
        pixels = inputs.pixels.detach().requires_grad_()
        attr = Saliency(ScoreFunction(self.model, inputs)).attribute(pixels, abs=True)          # (B, 3, H, W)
        return pool_to_grid(attr, self.grid)
