"""Attention records: every attention matrix of one scored pass, in the order the model ran them.

Rollout and relevance (mmdemo.explain) are written once against `Record`; how to read a model's attention is its
family's business, in an `AttentionProbe` that the model returns from `attention_probe()`."""
from __future__ import annotations

from dataclasses import dataclass, field
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

KINDS = ("image", "text", "joint", "cross")   # image→image, text→text, joint (image tokens first), text→image
Score = Callable[[torch.Tensor], torch.Tensor]  # pixels (B, 3, H, W) -> (B,) score of each item's target
GRAPH = "graph"                 # record(grad=GRAPH): keep the autograd graph, take no gradients (the caller does)


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

    def add_gradients(self, score: torch.Tensor, *, keep_graph: bool = False) -> None:
        """Fill each step's `grad` with d score.sum() / d weights (zeros where the score does not depend on it);
        `keep_graph` leaves the graph for more gradients (one per caption term, say)."""
        grads = torch.autograd.grad(score.sum(), [s.weights for s in self.steps], allow_unused=True,
                                    retain_graph=keep_graph)
        for s, g in zip(self.steps, grads):
            s.grad = torch.zeros_like(s.weights) if g is None else g


class AttentionProbe:
    """Runs `score` once while the model's attention modules keep their weights, and lays them out as a Record."""

    def record(self, score: Score, inputs: Any, *, grad: bool | str) -> Record:
        """`inputs`: the ExplainInputs `score` runs on (models.base imports this module, not the reverse).
        grad: False (weights only), True (and each step's gradient of the summed score), or GRAPH (autograd on,
        no gradients taken: `rec.score` keeps its graph and the steps' weights sit in it)."""
        raise NotImplementedError


@contextmanager
def patched_forward(module: torch.nn.Module, forward: Callable[..., Any]) -> Iterator[None]:
    """`module(...)` calls `forward` inside the block (an instance attribute shadowing the method); restored after."""
    own = module.__dict__.get("forward")
    module.forward = forward
    try:
        yield
    finally:
        if own is None:
            del module.forward
        else:
            module.forward = own
