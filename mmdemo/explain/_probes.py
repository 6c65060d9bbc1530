"""Every attention matrix of one forward pass, in the order the model ran them, optionally with its gradient.

Rollout and relevance are written once against this record; what differs between models is only how to read
their attention, which lives here in one small probe class per model family."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..models.base import ExplainInputs, VLModel
from ._forward import ScoreFunction

KINDS = ("image", "text", "joint", "cross")   # image→image, text→text, joint (image tokens first), text→image


@dataclass
class Step:
    kind: str                          # one of KINDS
    weights: torch.Tensor              # (B, heads, Q, K)
    grad: torch.Tensor | None = None   # d score / d weights, same shape


@dataclass
class Record:
    """The steps, and where things sit: image-side steps are over n_image tokens, of which `patches` are the grid
    (raster order); text rows number n_text; a joint step's sequence holds the image tokens at `joint_image` and
    the text rows at `joint_text`."""
    steps: list[Step]
    n_image: int
    n_text: int
    patches: torch.Tensor | None = None        # (P,) indices into the image tokens; None: all of them
    joint_image: torch.Tensor | None = None    # (n_image,) indices into a joint sequence
    joint_text: torch.Tensor | None = None     # (n_text,)
    score: torch.Tensor | None = field(repr=False, default=None)   # (B,)

    def patch_columns(self, rel: torch.Tensor) -> torch.Tensor:
        """(…, n_image) -> (…, P): keep the grid's columns."""
        return rel if self.patches is None else rel[..., self.patches.to(rel.device)]


class ShapesProbe:
    """The embedded ShapesNet: every `Attention` module can keep the weights of its last call (`record`)."""

    def __init__(self, model):
        self.model, net = model, model.net
        self.fusion = net.cfg.fusion
        self.modules: list[tuple[str, torch.nn.Module]] = [("image", b.attn) for b in net.image_blocks]
        self.modules += [("text", b.attn) for b in net.text_blocks]
        for b in net.fusion_blocks:
            self.modules.append(("joint" if self.fusion == "early" else "text", b.attn))
            if b.cross is not None:
                self.modules.append(("cross", b.cross))

    def record(self, inputs: ExplainInputs, *, grad: bool) -> Record:
        for _, m in self.modules:
            m.record = True
        try:
            with torch.set_grad_enabled(grad):
                score = ScoreFunction(self.model, inputs)(inputs.pixels.detach().requires_grad_(grad))         # (B,)
            steps = [Step(kind, m.weights) for kind, m in self.modules]
        finally:
            for _, m in self.modules:
                m.record, m.weights = False, None
        if grad:
            grads = torch.autograd.grad(score.sum(), [s.weights for s in steps], allow_unused=True)
            for s, g in zip(steps, grads):
                s.grad = torch.zeros_like(s.weights) if g is None else g
        P = self.model.net.cfg.grid ** 2
        if self.fusion == "early":
            T = next(s.weights.shape[-1] - P for s in steps if s.kind == "joint")
            return Record(steps, P, T, joint_image=torch.arange(P), joint_text=torch.arange(P, P + T),
                          score=score.detach())
        T = next((s.weights.shape[-2] for s in steps if s.kind in ("text", "cross")), 0)
        return Record(steps, P, T, score=score.detach())


def probe_for(model: VLModel):
    """The probe that can read this model's attention matrices, or None."""
    net = getattr(model, "net", None)
    if net is not None and type(model).__name__ == "ShapesModel":
        return ShapesProbe(model)
    hub = getattr(model, "attention_probe", None)     # hub adapters: see _hub_probes
    if callable(hub):
        return hub()
    from ._hub_probes import hub_probe
    return hub_probe(model)
