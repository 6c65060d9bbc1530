"""`attention`: the model's own text→image attention for the target, from one forward pass."""
from __future__ import annotations

import torch

from ...errors import InputError
from ...models.base import ExplainInputs, VLModel
from .._method import MapMethod
from .._registry import register
from .._rows import row_weights


def pick(att: torch.Tensor, index: int | None, axis: int, what: str) -> torch.Tensor:
    """Mean over `axis` (index None) or the one entry `index` (negative counts from the end), axis kept."""
    if index is None:
        return att.mean(axis, keepdim=True)
    n = att.shape[axis]
    if not -n <= index < n:
        raise InputError(f"{what} {index} does not exist; the model has {n} (0 … {n - 1})")
    return att.narrow(axis, index % n, 1)


@register
class AttentionMap(MapMethod):
    name = "attention"
    summary = "text→image attention of the target's rows, mean over layers and heads (or one of each)"
    contrastive = False                 # the same attention whichever word is scored

    @classmethod
    def supports(cls, model: VLModel) -> bool:
        return model.has_attention

    def attribute(self, inputs: ExplainInputs, *, layer: int | None = None, head: int | None = None) -> torch.Tensor:
        with torch.no_grad():
            att = self.model.attention(inputs).float()                         # (L, B, heads, T, P)
        att = pick(pick(att, layer, 0, "layer"), head, 2, "head")[0, :, 0]     # (B, T, P)
        w = row_weights(inputs, att.shape[1]).to(att.device)                   # (B, T)
        return self.to_grid(torch.einsum("bt,btp->bp", w, att))

    def attribute_rows(self, inputs: ExplainInputs, *, layer: int | None = None,
                       head: int | None = None) -> torch.Tensor | None:
        """(B, T, h, w): row j is token j's map (the rows of one teacher-forced pass); None for answers."""
        if inputs.targets[0].kind == "answer":
            return None
        with torch.no_grad():
            att = self.model.attention(inputs).float()                         # (L, B, heads, T, P)
        att = pick(pick(att, layer, 0, "layer"), head, 2, "head")[0, :, 0]     # (B, T, P)
        return att.reshape(*att.shape[:2], *self.grid)
