"""The model protocol: result types and the surface every model (embedded or hub) offers."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import InputError

if TYPE_CHECKING:  # torch stays out of light imports (CLI store commands, registry listing)
    import torch
    from PIL import Image

TASKS = ("caption", "vqa")
FUSIONS = ("early", "cross", "late", "encoder-decoder")


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Caption:
    text: str
    tokens: list[tuple[str, float]]     # (token, probability it was given when generated)

    def to_dict(self) -> dict[str, Any]:
        return {"caption": self.text, "tokens": [{"token": t, "prob": p} for t, p in self.tokens]}


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

    def __post_init__(self) -> None:
        if self.kind not in ("answer", "caption", "token"):
            raise ValueError(f"target kind must be answer, caption or token, not {self.kind!r}")
        if self.kind == "token" and self.token is None:
            raise ValueError("a token target needs the token index")


class VLModel(ABC):
    """Every model offers this. Lists in, lists out; images are RGB PIL images of any size."""

    info: ModelInfo

    @abstractmethod
    def caption(self, images: Sequence["Image.Image"], **decoding: Any) -> list[Caption]: ...

    @abstractmethod
    def answer(self, images: Sequence["Image.Image"], questions: Sequence[str], top_k: int = 5) -> list[Answer]: ...

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
                             {name: cat(v) for name, v in self.extra.items()})

    def to(self, device: "torch.device | str") -> "ExplainInputs":
        import torch
        move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else v  # noqa: E731
        return ExplainInputs(move(self.pixels), self.targets, self.text_tokens,
                             {k: move(v) for k, v in self.extra.items()})
