"""`gradattn`: one fusion layer's text→image attention, each head weighted by how much the score depends on it.

Per head h of the layer: (∇_A s ⊙ A_h)⁺, the attention that raises the target's score, averaged over heads, on the
target's rows (Chefer et al. 2021's per-layer term, without propagating through the other layers). On the shapes
models the last fusion layer's heads specialise (some read colour, some shape) and the earlier layers point
elsewhere: the plain mean over layers and heads dilutes the heads that matter for the word."""
from __future__ import annotations

import torch

from ...models.base import ExplainInputs, VLModel
from .._forward import record_attention
from .._method import MapMethod
from .._registry import register
from .._rows import row_weights
from .attention import pick
from .rollout import block


@register
class GradientWeightedAttention(MapMethod):
    name = "gradattn"
    summary = "one fusion layer's text→image attention (default the last), heads weighted by their gradient"

    @classmethod
    def supports(cls, model: VLModel) -> bool:
        return model.info.fusion in ("early", "cross", "encoder-decoder") and model.attention_probe() is not None

    def attribute(self, inputs: ExplainInputs, *, layer: int = -1) -> torch.Tensor:
        rec = record_attention(self.model, inputs, grad=True)
        steps = [s for s in rec.steps if s.kind in ("cross", "joint")]
        s = pick_steps(steps, layer)[0]
        with torch.no_grad():
            a = (s.grad.float() * s.weights.float()).clamp_min(0).mean(1)              # (B, Q, K)
            if s.kind == "joint":
                a = block(a, rec.joint_text, rec.joint_image)                           # text rows, image columns
            a = rec.patch_columns(a)                                                     # (B, T, P)
            w = row_weights(inputs, a.shape[1]).to(a.device)
            return self.to_grid(torch.einsum("bt,btp->bp", w, a))


def pick_steps(steps: list, layer: int) -> list:
    """The one text→image step `layer` (negative counts from the end), as a one-item list."""
    idx = pick(torch.arange(len(steps))[:, None], layer, 0, "layer")
    return [steps[int(idx[0, 0])]]
