"""`text-ig`: Integrated Gradients on the word embeddings (Captum LayerIntegratedGradients), image held fixed."""
from __future__ import annotations

import torch
from captum.attr import LayerIntegratedGradients

from ...models.base import ExplainInputs
from .._forward import ScoreFunction, max_rows
from .._method import MapMethod
from .._registry import register


@register
class TextIntegratedGradients(MapMethod):
    name = "text-ig"
    summary = "Integrated Gradients of each question or caption word, from a zero word embedding; image fixed"
    output = "text"
    contrastive = False                 # its layer hook would put the target's word embeddings in both passes

    def attribute(self, inputs: ExplainInputs, *, steps: int = 32, internal_batch_size: int | None = None,
                  method: str = "gausslegendre") -> torch.Tensor:
        """(B, F): per word feature (see `_forward.word_features`), the summed IG attribution of its embedding;
        words add up to score(words) - score(zero word vectors)."""
        fn = ScoreFunction(self.model, inputs)
        gate = fn.gate
        if gate.n_features == 0:
            return torch.zeros(fn.batch, 0)
        lig = LayerIntegratedGradients(fn.of_gate, self.model.text_embedding)
        attr = lig.attribute(gate.ones(), baselines=gate.baseline(), n_steps=int(steps), method=method,
                             internal_batch_size=max(max_rows(fn, internal_batch_size), fn.batch))   # (B, S, D)
        per_position = attr.float().sum(-1)                                          # (B, S)
        where = gate.positions.clamp_min(0)
        return per_position.gather(1, where) * gate.valid                           # (B, F)
