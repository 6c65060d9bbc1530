"""`inputxgrad`: pixels times their gradient (Captum InputXGradient), summed per patch."""
from __future__ import annotations

import torch
from captum.attr import InputXGradient

from ..models.base import ExplainInputs
from ._forward import ScoreFunction, pool_to_grid
from ._method import MapMethod
from ._registry import register


@register
class InputXGradientMap(MapMethod):
    name = "inputxgrad"
    summary = "input × gradient on the model's pixels, summed per patch"

    def attribute(self, inputs: ExplainInputs) -> torch.Tensor:
        pixels = inputs.pixels.detach().requires_grad_()
        attr = InputXGradient(ScoreFunction(self.model, inputs)).attribute(pixels)              # (B, 3, H, W)
        return pool_to_grid(attr, self.grid)
