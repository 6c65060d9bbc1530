"""The attention probe of the Hugging Face adapters: each family names the submodules that hold attention and
lays their matrices out as Steps (see `models.probes`).

The probe runs the adapter's own score while those submodules return their attention (`output_attentions=True`
forced on their forward for that one call). Eager attention returns the very softmax tensors the forward used, so
their gradients are the ones relevance needs."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from ..base import ExplainInputs
from ..probes import GRAPH, AttentionProbe, Record, Score, Step, patched_forward


@contextmanager
def capture(module: nn.Module, into: list) -> Iterator[None]:
    """For calls inside the block, `module(...)` runs with output_attentions=True and its outputs go to `into`."""
    inner = module.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        kwargs["output_attentions"] = True
        out = inner(*args, **kwargs)
        into.append(out)
        return out

    with patched_forward(module, forward):
        yield


@contextmanager
def _text_in_graph(layer: nn.Module) -> Iterator[None]:
    def mark(module, args, out):
        # a clone, not the leaf itself: models add position embeddings to it in place
        return out if out.requires_grad else out.detach().requires_grad_(True).clone()

    handle = layer.register_forward_hook(mark)
    try:
        yield
    finally:
        handle.remove()


class HubProbe(AttentionProbe):
    """Runs `score` under `capture` of the adapter's attention-holding submodules; subclasses lay out the steps."""

    def __init__(self, model):
        self.model = model
        self.P = model.grid[0] * model.grid[1]

    def modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def layout(self, outs: list[Any], inputs: ExplainInputs) -> Record:
        raise NotImplementedError

    def record(self, score: Score, inputs: ExplainInputs, *, grad: bool | str) -> Record:
        outs: list[list[Any]] = [[] for _ in self.modules()]
        with ExitStack() as stack, torch.set_grad_enabled(bool(grad)):
            for module, into in zip(self.modules(), outs):
                stack.enter_context(capture(module, into))
            if grad:   # frozen weights: without this, text-only layers would hang outside the graph
                stack.enter_context(_text_in_graph(self.model.text_embedding))
            value = score(inputs.pixels.detach().requires_grad_(bool(grad)))                      # (B,)
        rec = self.layout([o[-1] for o in outs], inputs)
        if grad is True:
            rec.add_gradients(value)
        rec.score = value if grad == GRAPH else value.detach()
        return rec

    def image_side(self, attentions) -> list[Step]:
        return [Step("image", a) for a in attentions]

    @staticmethod
    def decoder(self_attn, cross_attn) -> list[Step]:
        """Per layer: the text self-attention, then the cross-attention to the image tokens."""
        steps = []
        for s, c in zip(self_attn, cross_attn):
            steps += [Step("text", s), Step("cross", c)]
        return steps

    def image_record(self, steps: list[Step], n_image: int, n_text: int, **joint: torch.Tensor) -> Record:
        patches = torch.arange(n_image - self.P, n_image)            # CLS (and any other token) first, then patches
        return Record(steps, n_image, n_text, patches=patches, **joint)
