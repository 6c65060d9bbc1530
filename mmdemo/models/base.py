"""The model protocol: result types and the surface every model (embedded or hub) offers."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from ..errors import InputError

if TYPE_CHECKING:  # torch stays out of light imports (CLI store commands, registry listing)
    import torch
    from PIL import Image

    from .probes import AttentionProbe

TASKS = ("caption", "vqa")
FUSIONS = ("early", "cross", "late", "encoder-decoder")
DOMAINS = ("shapes", "photos")          # the shapes world (mmdemo.world), or photographs
STRATEGIES = ("greedy", "beam", "nucleus")
MAX_NEW_TOKENS = 64                     # most caption tokens a request may ask for


@dataclass(frozen=True)
class Decoding:
    """How a caption is generated; one type for every family, each maps it to its own decoder.

    Fields that do not apply to the strategy are kept as given but ignored (`to_dict` leaves them out)."""
    strategy: str = "greedy"            # greedy | beam | nucleus
    max_new_tokens: int = 24            # most tokens generated, 1 … MAX_NEW_TOKENS
    beams: int = 3                      # beam search width, 1 … 8 (strategy "beam")
    top_p: float = 0.9                  # nucleus mass, 0.05 … 1 (strategy "nucleus")
    temperature: float = 1.0            # sampling temperature, 0.05 … 2 (strategy "nucleus")
    seed: int | None = None             # sampling seed; None draws a fresh one (strategy "nucleus")

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InputError(f"decoding strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        object.__setattr__(self, "max_new_tokens",
                           whole_number(self.max_new_tokens, "max new tokens", 1, MAX_NEW_TOKENS))
        object.__setattr__(self, "beams", whole_number(self.beams, "number of beams", 1, 8))
        object.__setattr__(self, "top_p", number_in(self.top_p, "top-p", 0.05, 1.0))
        object.__setattr__(self, "temperature", number_in(self.temperature, "temperature", 0.05, 2.0))
        if self.seed is not None:
            seed = whole_number(self.seed, "seed", -1, 2**63 - 1)
            object.__setattr__(self, "seed", seed if seed >= 0 else None)   # the UI sends -1 for "no seed"

    @property
    def sampling(self) -> bool:
        return self.strategy == "nucleus"

    def to_dict(self) -> dict[str, Any]:
        """The settings that shaped the output (what the store and the batch rows keep)."""
        out: dict[str, Any] = {"strategy": self.strategy, "max_new_tokens": self.max_new_tokens}
        if self.strategy == "beam":
            out["beams"] = self.beams
        elif self.strategy == "nucleus":
            out |= {"top_p": self.top_p, "temperature": self.temperature, "seed": self.seed}
        return out

    @classmethod
    def from_dict(cls, settings: "dict[str, Any] | Decoding | None") -> "Decoding":
        """From `to_dict`'s output or any subset of the fields; an unknown name is an InputError."""
        if isinstance(settings, Decoding):
            return settings
        settings = dict(settings or {})
        known = [f for f in cls.__dataclass_fields__]
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise InputError(f"unknown decoding setting {', '.join(map(str, unknown))}; known: {', '.join(known)}")
        return cls(**settings)


def whole_number(value: Any, name: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi]; sliders send 24.0 for 24, so integral floats pass."""
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():  # also NaN and infinities
        raise InputError(f"{name} must be a whole number, not {value!r}")
    if not lo <= number <= hi:
        raise InputError(f"{name} must be between {lo} and {hi}, not {int(number)}")
    return int(number)


def number_in(value: Any, name: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, not {value!r}") from None
    if not lo <= number <= hi:  # also refuses NaN
        raise InputError(f"{name} must be between {lo} and {hi}, not {number}")
    return number


@dataclass(frozen=True)
class ModelInfo:
    name: str
    tasks: tuple[str, ...]              # subset of TASKS
    fusion: str                         # one of FUSIONS
    input_size: tuple[int, int]         # (H, W) every image is resized to
    patch_grid: tuple[int, int]         # (h, w) grid of image tokens
    device: str = "cpu"
    dtype: str = "float32"
    weights: str = ""                   # where the weights came from (file, folder or hub id)
    revision: str = ""                  # content hash of the weights, or hub revision
    knows: str = ""                     # one sentence: what the model can and cannot see
    attention_layers: int = 0           # layers of text -> image attention that attention() returns (0: unknown)
    domain: str = "photos"              # one of DOMAINS: the images it was trained on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Caption:
    text: str
    tokens: list[tuple[str, float]]     # (token, probability it was given when generated)
    # per token, the model's most probable words at that step, best first, (word, probability), the chosen one
    # included; empty when the family cannot say
    alternatives: list[list[tuple[str, float]]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """{"caption", "tokens": [{"token", "prob"}]}; each token also carries "alternatives": [{"token", "prob"}]
        when the model gave them."""
        tokens = [{"token": t, "prob": p} for t, p in self.tokens]
        for row, alts in zip(tokens, self.alternatives):
            row["alternatives"] = [{"token": a, "prob": q} for a, q in alts]
        return {"caption": self.text, "tokens": tokens}


@dataclass
class Answer:
    answer: str
    prob: float
    top_k: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "prob": self.prob,
                "top_k": [{"answer": a, "prob": p} for a, p in self.top_k]}


@dataclass(frozen=True)
class Target:
    """What an explanation explains: the answer to a question, a whole caption, or one caption token."""
    kind: str                           # "answer" | "caption" | "token"
    text: str                           # the answer, or the caption (teacher-forced)
    question: str | None = None         # for kind == "answer"
    token: int | None = None            # for kind == "token": index into the caption's tokens
    contrast: str | None = None         # "answer" / "token": explain log p(text) - log p(contrast) instead, the
                                        # contrast taking the target's place (same question, same prefix)
    end: bool = False                   # kind == "caption": also score the end-of-text token (fine-tuning learns
                                        # where a caption stops; explanations leave it out)

    def __post_init__(self) -> None:
        if self.kind not in ("answer", "caption", "token"):
            raise ValueError(f"target kind must be answer, caption or token, not {self.kind!r}")
        if self.kind == "token" and self.token is None:
            raise ValueError("a token target needs the token index")
        if self.contrast is not None:
            if self.kind == "caption":
                raise InputError("a contrast replaces one word: give a token target (or an answer), not a caption")
            if not isinstance(self.contrast, str) or not self.contrast.strip():
                raise InputError("the contrast word is empty")
            object.__setattr__(self, "contrast", self.contrast.strip())


class VLModel(ABC):
    """Every model offers this. Lists in, lists out; images are RGB PIL images of any size.

    Besides the abstract members, a family says what explanations may ask of it by overriding the defaults
    below: whether `attention` has anything to return, a probe that records every attention matrix of one pass
    (rollout, relevance), the layer Grad-CAM reads, and which explanation methods it offers at all."""

    info: ModelInfo
    honours: ClassVar[tuple[str, ...]] = tuple(f for f in Decoding.__dataclass_fields__)  # Decoding fields it obeys
    has_attention: ClassVar[bool] = True                # False: `attention` raises (nothing text->image to show)
    explain_methods: ClassVar[tuple[str, ...] | None] = None   # the explanation methods it offers (None: every
                                                               # method its surface allows)

    @abstractmethod
    def caption(self, images: Sequence["Image.Image"], decoding: Decoding | None = None) -> list[Caption]:
        """One caption per image, generated as `decoding` says (None: greedy, `Decoding()`)."""

    @abstractmethod
    def answer(self, images: Sequence["Image.Image"], questions: Sequence[str], top_k: int = 5) -> list[Answer]: ...

    def attention_probe(self) -> "AttentionProbe | None":
        """Records every attention matrix of one scored pass (see `mmdemo.models.probes`); None: no probe."""
        return None

    def fusion_input(self) -> Any:
        """A `mmdemo.models.fusion.FusionInput`: the image tokens as the text side reads them, encoded once per image;
        None: the image enters the text side in no separate form (one stream from the pixels on)."""
        return None

    # --- fine-tuning (mmdemo.train.finetune): a family that can learn from corrections overrides these three ---
    def trainable_parameters(self) -> "list[tuple[str, torch.nn.Parameter]]":
        """(name, parameter) pairs a fine-tuning run updates, gradients switched on; [] (the default): the model
        cannot be trained here. The loss is `-score(prepare(images, targets))`, so `score` must be differentiable
        w.r.t. these parameters."""
        return []

    def train_mode(self, on: bool = True) -> None:
        """Training behaviour (dropout) on, or back to evaluation (and gradients off the parameters again)."""

    def save(self, folder: "str | Path", training: dict[str, Any]) -> None:
        """Write the model to `folder` so that `mmdemo.load(str(folder))` opens it; `training` (JSON-ready) is
        kept with the weights."""
        raise InputError(f"{self.info.name!r} cannot be saved as a model folder")

    @property
    def vision_layer(self) -> "torch.nn.Module":
        """The module Grad-CAM reads: the last image tokens (or feature map) before they meet the text.
        By default the patch embedding (the first vision layer) stands in."""
        return self.image_embedding

    # --- the differentiable surface the explanation methods are written against -------------
    @abstractmethod
    def prepare(self, images: Sequence["Image.Image"], targets: Sequence[Target]) -> "ExplainInputs":
        """Tensors for `score`: pixels (B, 3, H, W) plus whatever text ids the targets need."""

    @abstractmethod
    def score(self, inputs: "ExplainInputs", *, pixels: "torch.Tensor | None" = None) -> "torch.Tensor":
        """(B,) log-probability of each item's target; differentiable w.r.t. `pixels` and embeddings.

        `pixels` may hold k*B rows, step-major as Captum lays out its expanded batches (row = step * B + item)."""

    @abstractmethod
    def attention(self, inputs: "ExplainInputs") -> "torch.Tensor":
        """(L, B, heads, T, h*w) attention from the target's text positions to image patches."""

    @property
    @abstractmethod
    def image_embedding(self) -> "torch.nn.Module":
        """The module whose output is the image tokens (patch embedding): (B, h*w, D)."""

    @property
    @abstractmethod
    def text_embedding(self) -> "torch.nn.Module":
        """The word-embedding module: (B, T) ids -> (B, T, D)."""


@dataclass
class ExplainInputs:
    """Tensors for one explanation batch; `extra` carries model-specific fields (ids, masks, labels)."""
    pixels: "torch.Tensor"              # (B, 3, H, W), already normalised for the model
    targets: list[Target]
    text_tokens: list[list[str]]        # the text tokens each item's attributions are reported over
    extra: dict[str, Any] = field(default_factory=dict)
    contrast: "ExplainInputs | None" = None   # contrastive targets: the same items with the contrast in place (the
                                              # explanation engine scores the difference; families never see it)

    def tiled(self, n: int) -> "ExplainInputs":
        """These inputs for n = k·B rows, laid out the way Captum expands a batch (step-major: rows
        [j·B, (j+1)·B) are step or window j of items 0 … B-1). Every tensor with a batch dimension is tiled."""
        import torch

        B = self.pixels.shape[0]
        if n == B:
            return self
        if n <= 0 or n % B:
            raise InputError(f"{n} rows is not a multiple of the {B} prepared items")
        k = n // B
        cat = lambda v: torch.cat([v] * k) if isinstance(v, torch.Tensor) and v.dim() else v  # noqa: E731
        return ExplainInputs(cat(self.pixels), list(self.targets) * k, list(self.text_tokens) * k,
                             {name: cat(v) for name, v in self.extra.items()},
                             self.contrast.tiled(n) if self.contrast is not None else None)

    def to(self, device: "torch.device | str") -> "ExplainInputs":
        import torch
        move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else v  # noqa: E731
        return ExplainInputs(move(self.pixels), self.targets, self.text_tokens,
                             {k: move(v) for k, v in self.extra.items()},
                             self.contrast.to(device) if self.contrast is not None else None)
