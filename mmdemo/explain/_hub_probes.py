"""Attention probes and last vision layers for the Hugging Face adapters (mmdemo.models.hub).

Each probe runs the adapter's own `score` while the submodules that hold attention return it
(`output_attentions=True` forced on their forward for that one call), then lays the matrices out as Steps.
Eager attention returns the very softmax tensors the forward used, so their gradients are the ones relevance
needs. Adapters are told apart by class name, so this module imports neither transformers nor the adapters."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..models.base import ExplainInputs
from ._forward import ScoreFunction
from ._probes import Record, Step


@contextmanager
def capture(module: nn.Module, into: list) -> Iterator[None]:
    """For calls inside the block, `module(...)` runs with output_attentions=True and its outputs go to `into`."""
    own = module.__dict__.get("forward")
    inner = module.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        kwargs["output_attentions"] = True
        out = inner(*args, **kwargs)
        into.append(out)
        return out

    module.forward = forward
    try:
        yield
    finally:
        if own is None:
            del module.forward
        else:
            module.forward = own


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


class HubProbe:
    """Runs `score` under `capture` of the adapter's attention-holding submodules; subclasses lay out the steps."""

    def __init__(self, model):
        self.model = model
        self.P = model.grid[0] * model.grid[1]

    def modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def layout(self, outs: list[Any], inputs: ExplainInputs) -> Record:
        raise NotImplementedError

    def record(self, inputs: ExplainInputs, *, grad: bool) -> Record:
        outs: list[list[Any]] = [[] for _ in self.modules()]
        with ExitStack() as stack, torch.set_grad_enabled(grad):
            for module, into in zip(self.modules(), outs):
                stack.enter_context(capture(module, into))
            if grad:   # frozen weights: without this, text-only layers would hang outside the graph
                stack.enter_context(_text_in_graph(self.model.text_embedding))
            score = ScoreFunction(self.model, inputs)(inputs.pixels.detach().requires_grad_(grad))
        rec = self.layout([o[-1] for o in outs], inputs)
        if grad:
            grads = torch.autograd.grad(score.sum(), [s.weights for s in rec.steps], allow_unused=True)
            for s, g in zip(rec.steps, grads):
                s.grad = torch.zeros_like(s.weights) if g is None else g
        rec.score = score.detach()
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


class BlipCaptionProbe(HubProbe):
    def modules(self):
        return [self.model.model.vision_model, self.model.model.text_decoder]

    def layout(self, outs, inputs):
        vision, text = outs
        steps = self.image_side(vision.attentions) + self.decoder(text.attentions, text.cross_attentions)
        return self.image_record(steps, vision.attentions[0].shape[-1], text.attentions[0].shape[-1])


class BlipAnswerProbe(HubProbe):
    """The question encoder's self- and cross-attention; the answer decoder reads only the fused question."""

    def modules(self):
        return [self.model.model.vision_model, self.model.model.text_encoder]

    def layout(self, outs, inputs):
        vision, text = outs
        steps = self.image_side(vision.attentions) + self.decoder(text.attentions, text.cross_attentions)
        return self.image_record(steps, vision.attentions[0].shape[-1], text.attentions[0].shape[-1])


class ViltProbe(HubProbe):
    """One joint sequence: Tq question tokens, then the image CLS, then the patches in raster order."""

    def modules(self):
        return [self.model.model.vilt]

    def layout(self, outs, inputs):
        (out,) = outs
        Tq = inputs.extra["question_ids"].shape[1]
        N = out.attentions[0].shape[-1]
        return self.image_record([Step("joint", a) for a in out.attentions], N - Tq, Tq,
                                 joint_text=torch.arange(Tq), joint_image=torch.arange(Tq, N))


class GitProbe(HubProbe):
    """CLIP image layers, then one joint sequence: the image tokens (CLS, patches) first, then the text."""

    def modules(self):
        return [self.model.model.git.image_encoder, self.model.model.git]

    def layout(self, outs, inputs):
        vision, joint = outs
        S = inputs.extra["input_ids"].shape[1]
        N = joint.attentions[0].shape[-1]
        I = N - S
        if vision.attentions[0].shape[-1] != I:
            raise RuntimeError(f"GIT has {I} image tokens in the decoder but {vision.attentions[0].shape[-1]} in CLIP")
        steps = self.image_side(vision.attentions) + [Step("joint", a) for a in joint.attentions]
        return self.image_record(steps, I, S, joint_image=torch.arange(I), joint_text=torch.arange(I, N))


class EncoderDecoderProbe(HubProbe):
    def modules(self):
        return [self.model.model]

    def layout(self, outs, inputs):
        (out,) = outs
        steps = self.image_side(out.encoder_attentions) + self.decoder(out.decoder_attentions, out.cross_attentions)
        return self.image_record(steps, out.encoder_attentions[0].shape[-1], out.decoder_attentions[0].shape[-1])


PROBES: dict[str, type[HubProbe]] = {
    "BlipCaptioner": BlipCaptionProbe, "BlipAnswerer": BlipAnswerProbe, "ViltAnswerer": ViltProbe,
    "GitCaptioner": GitProbe, "EncoderDecoderCaptioner": EncoderDecoderProbe,
}

VISION_LAYERS: dict[str, Callable[[Any], nn.Module]] = {
    "BlipCaptioner": lambda m: m.model.vision_model.post_layernorm,
    "BlipAnswerer": lambda m: m.model.vision_model.post_layernorm,
    # single stream: the last layer's output reaches the answer only through [CLS]; take the input of the last layer
    "ViltAnswerer": lambda m: m.model.vilt.encoder.layer[-2],
    "GitCaptioner": lambda m: m.model.git.image_encoder.vision_model.post_layernorm,
    "EncoderDecoderCaptioner": lambda m: m.model.encoder.layernorm,
}


def _family(model) -> str | None:
    """The adapter class name this module knows, looked up along the class's bases."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("mmdemo.models.hub") and cls.__name__ in PROBES:
            return cls.__name__
    return None


def hub_probe(model) -> HubProbe | None:
    family = _family(model)
    return PROBES[family](model) if family else None


def hub_vision_layer(model) -> nn.Module | None:
    family = _family(model)
    if family is None:
        return None
    try:
        return VISION_LAYERS[family](model)
    except AttributeError:              # another version of transformers named it differently
        return None
