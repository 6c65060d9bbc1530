"""Record text -> image attention of a ShapesNet with a context manager (no edits to the model)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch


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
