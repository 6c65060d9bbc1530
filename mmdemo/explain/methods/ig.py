"""`ig`: Integrated Gradients at the fusion input (the image tokens as the text side reads them, encoded once; see
`_fusion`) where the model has one, else on the patch embedding (Captum LayerIntegratedGradients)."""
from __future__ import annotations

import torch
from captum.attr import LayerIntegratedGradients

from ...models.base import ExplainInputs
from .. import _fusion
from .._forward import ScoreFunction, image_baseline, max_rows
from .._method import MapMethod
from .._registry import register


@register
class IntegratedGradientsMap(MapMethod):
    name = "ig"
    summary = ("Integrated Gradients from a baseline image, at the image tokens the text reads (or the patch "
               "embedding)")

    def attribute(self, inputs: ExplainInputs, *, steps: int = 32, baseline: str | float = "median",
                  internal_batch_size: int | None = None, method: str = "gausslegendre",
                  at: str | None = None) -> torch.Tensor:
        """(B, h, w): per patch, the sum over its token of IG attributions; with the other tokens' (CLS) they add up
        to score(image) - score(baseline) (completeness), up to the integral's approximation error.

        `at`: "fusion" (the encoded image tokens the text side reads; the default where the model has them) or
        "patches" (the patch embedding, before the image encoder)."""
        fusion = _fusion.fusion_of(self.model, at, "patches")
        if fusion is not None:
            attr = _fusion.integrated_gradients(fusion, inputs, steps=steps, baseline=baseline, grid=self.grid,
                                                method=method)                   # (B, N)
            return self.to_grid(attr[:, -fusion.n_patches:])
        fn = ScoreFunction(self.model, inputs)
        rows = max_rows(fn, internal_batch_size)
        lig = LayerIntegratedGradients(fn, self.model.image_embedding)
        attr = lig.attribute(inputs.pixels, baselines=image_baseline(inputs.pixels, baseline, self.grid),
                             n_steps=int(steps), method=method, internal_batch_size=max(rows, fn.batch))
        return self.to_grid(attr.float().sum(-1))                                # (B, P, D) -> (B, h, w)
