"""The layer the layer methods attach to (a model's `vision_layer`), seen as a (B, D, h, w) feature map."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GridTap(nn.Identity):
    """Routes a layer's image tokens through an identity module as a (B, D, h, w) map, for Captum's layer methods.

    The layer's output (B, N, D) (or a tuple whose first item it is) keeps its N - h·w leading tokens (CLS, text)
    untouched; the last h·w tokens pass through this module as (B, D, h, w) and are folded back."""

    def __init__(self, layer: nn.Module, grid: tuple[int, int]):
        super().__init__()
        self.layer, self.grid = layer, grid
        self.handle = None

    def __enter__(self) -> "GridTap":
        self.handle = self.layer.register_forward_hook(self._route)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()

    def _route(self, module: nn.Module, args: Any, out: Any) -> Any:
        tokens = out[0] if isinstance(out, tuple) else out
        h, w = self.grid
        if not isinstance(tokens, torch.Tensor) or tokens.dim() not in (3, 4):
            return out                                                  # another call (a pooled vector): untouched
        if tokens.dim() == 4:                                           # already (B, D, h, w)
            routed = self(tokens)
        else:
            B, N, D = tokens.shape
            if N < h * w:
                raise ValueError(f"the vision layer gives {N} tokens, fewer than the {h}×{w} patches")
            head, patches = tokens[:, : N - h * w], tokens[:, N - h * w:]
            fmap = self(patches.transpose(1, 2).reshape(B, D, h, w))                  # (B, D, h, w)
            routed = torch.cat([head, fmap.reshape(B, D, h * w).transpose(1, 2)], 1)
        return (routed, *out[1:]) if isinstance(out, tuple) else routed
