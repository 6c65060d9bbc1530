"""`ig`: Integrated Gradients on the patch embedding (Captum LayerIntegratedGradients), all steps in one batch."""
from __future__ import annotations

import torch
from captum.attr import LayerIntegratedGradients

from ...models.base import ExplainInputs
from .._forward import ScoreFunction, image_baseline, max_rows
from .._method import MapMethod
from .._registry import register


@register
class IntegratedGradientsMap(MapMethod):
    name = "ig"
    summary = "Integrated Gradients on the patch embedding, from the embedding of a baseline image"

    def attribute(self, inputs: ExplainInputs, *, steps: int = 32, baseline: str | float = "median",
                  internal_batch_size: int | None = None, method: str = "gausslegendre") -> torch.Tensor:
        """(B, h, w): per patch, the sum over its embedding of IG attributions; they add up to
        score(image) - score(baseline) (completeness), up to the integral's approximation error."""
        fn = ScoreFunction(self.model, inputs)
        rows = max_rows(fn, internal_batch_size)
        lig = LayerIntegratedGradients(fn, self.model.image_embedding)
        attr = lig.attribute(inputs.pixels, baselines=image_baseline(inputs.pixels, baseline, self.grid),
                             n_steps=int(steps), method=method, internal_batch_size=max(rows, fn.batch))
        return self.to_grid(attr.float().sum(-1))                                # (B, P, D) -> (B, h, w)
