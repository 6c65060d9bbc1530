"""`gradcam`: Grad-CAM (Captum LayerGradCam) on the last vision layer's patch tokens."""
from __future__ import annotations

import torch
from captum.attr import LayerGradCam

from ...models.base import ExplainInputs
from .._forward import ScoreFunction
from .._layers import GridTap
from .._method import MapMethod
from .._registry import register


@register
class GradCamMap(MapMethod):
    name = "gradcam"
    summary = "Grad-CAM on the last vision layer: channel weights = mean gradient over patches"
    contrastive = False                 # Captum keeps the layer of one forward pass; a contrast needs two

    def attribute(self, inputs: ExplainInputs) -> torch.Tensor:
        with GridTap(self.model.vision_layer, self.grid) as tap:
            cam = LayerGradCam(ScoreFunction(self.model, inputs), tap).attribute(inputs.pixels)   # (B, 1, h, w)
        return cam[:, 0].float()
