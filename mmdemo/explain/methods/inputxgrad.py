"""`inputxgrad`: (pixels - baseline) times their gradient (Captum InputXGradient), summed per patch."""
from __future__ import annotations

import torch
from captum.attr import InputXGradient

from ...models.base import ExplainInputs
from .._forward import ScoreFunction, image_baseline, pool_to_grid
from .._method import MapMethod
from .._registry import register


@register
class InputXGradientMap(MapMethod):
    name = "inputxgrad"
    summary = "input × gradient, the input measured from the same baseline as ig, summed per patch"

    def attribute(self, inputs: ExplainInputs, *, baseline: str | float = "median") -> torch.Tensor:
        """Plain x·∇f counts every pixel's distance from black, so on a light canvas the background outweighs the
        objects; (x - b)·∇f from an empty canvas b counts only what the image adds (IG's first-order term)."""
        fn = ScoreFunction(self.model, inputs)
        base = image_baseline(inputs.pixels, baseline, self.grid).detach()
        delta = (inputs.pixels - base).detach().requires_grad_()
        attr = InputXGradient(lambda d: fn(base + d)).attribute(delta)                       # (B, 3, H, W)
        return pool_to_grid(attr, self.grid)
