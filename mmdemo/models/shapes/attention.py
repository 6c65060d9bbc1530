"""Reading a ShapesNet's attention: text -> image maps for `attention`, and the probe rollout and relevance use."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from ..base import ExplainInputs
from ..probes import GRAPH, AttentionProbe, Record, Score, Step


@contextmanager
def record_attention(net) -> Iterator[Callable[[], torch.Tensor]]:
    """Inside the block every fusion attention keeps its weights; the yielded function returns
    (L, B, heads, T, P): for each fusion layer, how each text position attends over the P image patches."""
    fusion, P = net.cfg.fusion, net.cfg.grid ** 2
    if fusion == "cross":
        modules = [blk.cross for blk in net.fusion_blocks]
    elif fusion == "early":
        modules = [blk.attn for blk in net.fusion_blocks]
    else:
        modules = []
    pooled: list[torch.Tensor] = []
    if fusion == "late":  # the only place the late model weighs image positions: its pooling query

        def pooled_with_weights(image):
            q = net.pool_query.expand(image.shape[0], -1, -1)
            out, w = net.pool(q, image, image, need_weights=True, average_attn_weights=False)   # w: (B, h, 1, P)
            pooled.append(w)
            return out[:, 0]
        net.pooled_image = pooled_with_weights                          # instance attribute shadows the method
    for m in modules:
        m.record = True

    def maps() -> torch.Tensor:
        if fusion == "cross":
            return torch.stack([m.weights for m in modules])                            # (L, B, h, T, P)
        if fusion == "early":
            w = torch.stack([m.weights[..., P:, :P] for m in modules])               # text rows, image columns
            return w / w.sum(-1, keepdim=True).clamp_min(1e-12)
        if not pooled:
            raise RuntimeError("no image was pooled in the recorded call")
        return pooled[-1][None]                                                        # (1, B, h, 1, P)

    try:
        yield maps
    finally:
        for m in modules:
            m.record = False
            m.weights = None
        if fusion == "late":
            del net.pooled_image


class ShapesProbe(AttentionProbe):
    """Every `Attention` module of a ShapesNet can keep the weights of its last call (`record`)."""

    def __init__(self, net):
        self.fusion, self.P = net.cfg.fusion, net.cfg.grid ** 2
        self.modules: list[tuple[str, torch.nn.Module]] = [("image", b.attn) for b in net.image_blocks]
        self.modules += [("text", b.attn) for b in net.text_blocks]
        for b in net.fusion_blocks:
            self.modules.append(("joint" if self.fusion == "early" else "text", b.attn))
            if b.cross is not None:
                self.modules.append(("cross", b.cross))

    def record(self, score: Score, inputs: ExplainInputs, *, grad: bool | str) -> Record:
        for _, m in self.modules:
            m.record = True
        try:
            with torch.set_grad_enabled(bool(grad)):
                value = score(inputs.pixels.detach().requires_grad_(bool(grad)))                     # (B,)
            steps = [Step(kind, m.weights) for kind, m in self.modules]
        finally:
            for _, m in self.modules:
                m.record, m.weights = False, None
        rec = self._layout(steps)
        if grad is True:
            rec.add_gradients(value)
        rec.score = value if grad == GRAPH else value.detach()
        return rec

    def _layout(self, steps: list[Step]) -> Record:
        P = self.P
        if self.fusion == "early":
            T = next(s.weights.shape[-1] - P for s in steps if s.kind == "joint")
            return Record(steps, P, T, joint_image=torch.arange(P), joint_text=torch.arange(P, P + T))
        T = next((s.weights.shape[-2] for s in steps if s.kind in ("text", "cross")), 0)
        return Record(steps, P, T)
