"""The fusion input: the image tokens as the text side reads them, encoded once per image.

A family whose text side reads the output of a separate image encoder (BLIP's ViT through cross-attention, a
VisionEncoderDecoder's encoder, GIT's projected CLIP tokens) returns a `FusionInput` from `VLModel.fusion_input()`.
Explanations that do not need the encoder's gradients (IG at the fusion input, occlusion and Shapley values of image
regions, every token's attention) then pay for the image encoder once per image and run only the text side for each
step, token or perturbation.

The text side may read the tokens only through `projections()`: modules applied token by token and linear in the
tokens (cross-attention keys and values). Their outputs can be computed at two ends once and mixed, for any point
between (an IG path) or any choice of tokens from either end (occlusion): `score(..., projected=...)` injects them, so
the projections are never recomputed. A family with no such modules (the tokens join a single stream) returns [] and
the tokens themselves are mixed.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import nn

from .probes import patched_forward

if TYPE_CHECKING:
    from .base import ExplainInputs

CACHED_IMAGES = 8                       # encoded images kept per model


class FusionInput:
    """Encode once, score many times. Subclasses implement `encode`, `score_tokens`, `projections`, `n_patches`."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    # --- what a family implements ---------------------------------------------------------------------------
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, N, D) the image tokens the text side reads, from normalised pixels (B, 3, H, W); differentiable."""
        raise NotImplementedError

    def score_tokens(self, inputs: "ExplainInputs", tokens: torch.Tensor, *, trim: bool = False) -> torch.Tensor:
        """(n,) the target's score with the image given as tokens (n, N, D), n = k·B rows laid out as `score`.

        `trim`: the family may leave out text after the last scored token (a causal decoder's scores do not depend
        on it); callers that hook the word embeddings by position keep it False."""
        raise NotImplementedError

    def projections(self) -> list[nn.Module]:
        """The modules through which (and only through which) the text side reads the tokens: each maps (n, N, D)
        to (n, N, E) token by token and linearly. [] when the tokens join the text in one stream."""
        return []

    n_patches: int                      # the last n_patches tokens are the patch grid in raster order

    # --- shared ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encoded(self, pixels: torch.Tensor) -> torch.Tensor:
        """`encode` without gradients, each image row looked up by its content first (the image cache)."""
        keys = [_content_key(row) for row in pixels]
        with self._lock:
            found = {k: self._cache[k] for k in keys if k in self._cache}
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            with torch.inference_mode(False):         # plain tensors, usable later with autograd
                fresh = self.encode(pixels[missing].clone())
            for i, row in zip(missing, fresh):
                found[keys[i]] = row.detach()
        with self._lock:
            for k in keys:
                self._cache[k] = found[k]
                self._cache.move_to_end(k)
            while len(self._cache) > CACHED_IMAGES:
                self._cache.popitem(last=False)
        return torch.stack([found[k] for k in keys])

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def score(self, inputs: "ExplainInputs", tokens: torch.Tensor | None = None, *,
              projected: Sequence[torch.Tensor] | None = None, trim: bool = False) -> torch.Tensor:
        """(n,) score from tokens (n, N, D), or from the projections' outputs `projected` (one (n, N, E) tensor per
        module of `projections()`), which are then used as they are and the tokens are not read."""
        mods = self.projections()
        if projected is None or not mods:
            if tokens is None:
                raise ValueError("score needs tokens, or projected (for a fusion input with projections)")
            return self.score_tokens(inputs, tokens, trim=trim)
        if len(projected) != len(mods):
            raise ValueError(f"{len(projected)} projected tensors for {len(mods)} projections")
        n, N = projected[0].shape[:2]
        placeholder = projected[0].new_zeros(1, 1, 1).expand(n, N, self.width)   # never read: projections replaced
        with _replaced(mods, projected):
            return self.score_tokens(inputs, placeholder, trim=trim)

    @property
    def width(self) -> int:
        """D, the tokens' width (the projections' input features)."""
        mods = self.projections()
        if not mods:
            raise ValueError("no projections")
        w = getattr(mods[0], "in_features", None)
        return int(w if w is not None else mods[0].weight.shape[0])     # nn.Linear, or GPT-2's Conv1D (in, out)

    def project(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Every projection's output for tokens (n, N, D)."""
        return [m(tokens) for m in self.projections()]

    def pull_back(self, tokens: torch.Tensor, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """(n, N, D): Σ over projections of grad · d projection / d tokens (the same at any point: they are linear)."""
        with torch.enable_grad():
            t = tokens.detach().requires_grad_(True)
            outs = self.project(t)
            (g,) = torch.autograd.grad(outs, [t], list(grads))
        return g


@contextmanager
def _replaced(modules: Sequence[nn.Module], outputs: Sequence[torch.Tensor]) -> Iterator[None]:
    """Inside the block each module returns its given output instead of computing one."""
    with ExitStack() as stack:
        for module, out in zip(modules, outputs):
            stack.enter_context(_returning(module, out))
        yield


def _returning(module: nn.Module, out: torch.Tensor):
    """Inside the block, `module(x)` returns `out` (prepared for x's tokens) instead of computing it."""
    def forward(x: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        if x.shape[:2] != out.shape[:2]:
            raise RuntimeError(f"{type(module).__name__} was called on {tuple(x.shape)}, prepared for "
                               f"{tuple(out.shape[:2])} tokens")
        return out

    return patched_forward(module, forward)


def _content_key(row: torch.Tensor) -> tuple:
    data = row.detach().float().cpu().contiguous()
    digest = hashlib.blake2b(data.numpy().tobytes(), digest_size=16).hexdigest()
    return (tuple(row.shape), str(row.dtype), str(row.device), digest)
