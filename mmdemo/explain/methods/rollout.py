"""`rollout`: attention rollout (Abnar & Zuidema 2020) through every layer of a single-stream model."""
from __future__ import annotations

import torch

from ...models.base import ExplainInputs, VLModel
from .._forward import record_attention
from .._method import MapMethod
from .._registry import register
from .._rows import row_weights


def residual(att: torch.Tensor) -> torch.Tensor:
    """(B, N, N) head-averaged attention with the skip connection: 0.5·A + 0.5·I, rows summing to 1."""
    a = 0.5 * att + 0.5 * torch.eye(att.shape[-1], device=att.device)
    return a / a.sum(-1, keepdim=True)


@register
class AttentionRollout(MapMethod):
    name = "rollout"
    summary = "attention rollout (Abnar & Zuidema 2020): attention multiplied through the layers; single-stream models"
    contrastive = False                 # the same attention whichever word is scored

    @classmethod
    def supports(cls, model: VLModel) -> bool:
        return model.info.fusion == "early" and model.attention_probe() is not None

    def attribute(self, inputs: ExplainInputs) -> torch.Tensor:
        with torch.no_grad():
            rec = record_attention(self.model, inputs, grad=False)
            B, dev = inputs.pixels.shape[0], inputs.pixels.device
            r_image, r_text, joint = eye(rec.n_image, B, dev), eye(rec.n_text, B, dev), None
            for s in rec.steps:
                a = residual(s.weights.float().mean(1))                          # (B, Q, K)
                if s.kind == "image":
                    r_image = a @ r_image
                elif s.kind == "text":
                    r_text = a @ r_text
                elif s.kind == "joint":
                    if joint is None:
                        joint = eye(a.shape[-1], B, dev)
                        place(joint, rec.joint_image, rec.joint_image, r_image)
                        place(joint, rec.joint_text, rec.joint_text, r_text)
                    joint = a @ joint
                else:
                    raise ValueError("rollout follows single-stream models; this one has cross-attention")
            text_to_image = rec.patch_columns(block(joint, rec.joint_text, rec.joint_image))   # (B, T, P)
            w = row_weights(inputs, rec.n_text)
            return self.to_grid(torch.einsum("bt,btp->bp", w, text_to_image))


def eye(n: int, batch: int, device) -> torch.Tensor:
    return torch.eye(n, device=device).expand(batch, n, n).clone()


def block(r: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """r[:, rows][:, :, cols] for (B, N, N)."""
    return r[:, rows.to(r.device)][:, :, cols.to(r.device)]


def place(r: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, value: torch.Tensor) -> None:
    """r[:, rows × cols] = value, in place."""
    rows, cols = rows.to(r.device), cols.to(r.device)
    r[:, rows[:, None], cols[None, :]] = value
