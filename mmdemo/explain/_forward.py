"""The model's score as a plain function for Captum: expanded batches, image baselines, text gates, batch sizes.

Captum lays out an expanded batch step-major: n = k·B rows, rows [j·B, (j+1)·B) are step (or window) j of items
0 … B-1 (`torch.cat([x] * k)`). `ScoreFunction` builds ExplainInputs with every field tiled that way, so the
model always receives inputs whose batch matches its pixels and never has to guess a layout.
"""
from __future__ import annotations

import dataclasses
import re
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..models.base import ExplainInputs, Target, VLModel
from ..models.probes import Record

CPU_ROWS = 256                  # rows per forward pass on a CPU: beyond this, bigger batches stop paying
GPU_ROWS_CAP = 4096
# special tokens that are not words: [CLS], [SEP], [PAD], <s>, </s>, <pad>, <|endoftext|> …
SPECIAL = re.compile(r"^(\[[A-Z]+\]|</?s>|<(pad|unk|mask|bos|eos|sep|cls)>|<\|[a-z_]+\|>)$")


class ScoreFunction:
    """`model.score` as a function of pixels with n = k·B rows; `gate` (optional) scales the word embeddings.

    Called as f(pixels) or f(pixels, gate) where gate is (n, F) over each item's word features (see `TextGate`).
    Contrastive inputs (`inputs.contrast`, see `prepare`) score score(target) - score(contrast): two passes of
    the model over the same pixels (and the same gate), one per text.
    """

    def __init__(self, model: VLModel, inputs: ExplainInputs):
        self.model, self.inputs = model, inputs
        self.batch = inputs.pixels.shape[0]
        self._tiled: dict[int, ExplainInputs] = {self.batch: inputs}   # by row count
        self._gate: TextGate | None = None

    @property
    def gate(self) -> "TextGate":
        """The word features of these inputs (built on first use)."""
        if self._gate is None:
            self._gate = TextGate(self.model, self.inputs)
        return self._gate

    def expand(self, n: int) -> ExplainInputs:
        if n not in self._tiled:
            self._tiled[n] = self.inputs.tiled(n)
        return self._tiled[n]

    def __call__(self, pixels: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        inputs = self.expand(pixels.shape[0])
        if gate is None:
            return self._score(inputs, pixels)
        with self.gate.applied(gate):
            return self._score(inputs, pixels)

    def _score(self, inputs: ExplainInputs, pixels: torch.Tensor) -> torch.Tensor:
        value = self.model.score(inputs, pixels=pixels).float()
        if inputs.contrast is not None:
            value = value - self.model.score(inputs.contrast, pixels=pixels).float()
        return value

    def of_gate(self, gate: torch.Tensor) -> torch.Tensor:
        """The score with the image fixed and the words scaled by `gate` (n, F)."""
        return self(self.expand(gate.shape[0]).pixels, gate)


def record_attention(model: VLModel, inputs: ExplainInputs, *, grad: bool) -> Record:
    """Every attention matrix of one scored pass, read by the model's own probe (with gradients when `grad`)."""
    probe = model.attention_probe()
    if probe is None:
        raise InputError(f"{model.info.name} offers no attention probe")
    if inputs.contrast is None:
        return probe.record(ScoreFunction(model, inputs), inputs, grad=grad)
    # contrastive: one pass per text. The attention the target's term reads is the same in both passes (same
    # image, same prefix), so the record keeps the target pass's weights with d(target - contrast)/d weights.
    plain = dataclasses.replace(inputs, contrast=None)
    rec = probe.record(ScoreFunction(model, plain), plain, grad=grad)
    other = probe.record(ScoreFunction(model, inputs.contrast), inputs.contrast, grad=grad)
    if grad:
        for s, o in zip(rec.steps, other.steps):
            if s.grad is not None and o.grad is not None and s.grad.shape == o.grad.shape:
                s.grad = s.grad - o.grad
    if rec.score is not None and other.score is not None:
        rec.score = rec.score - other.score
    return rec


# --- preparing targets, contrastive ones included --------------------------------------------------------------
def prepare(model: VLModel, images: Sequence, targets: Sequence[Target]) -> ExplainInputs:
    """`model.prepare`, plus, when the targets carry a contrast, the same items with the contrast word in the
    target's place (`inputs.contrast`), prepared by the model too; `ScoreFunction` then scores the difference.

    An answer's contrast is another answer to the same question. A token's contrast replaces that token of the
    caption (same prefix); it must take exactly that token's place in the model's tokenisation (one token for one
    token, the rest unchanged), else an InputError says so."""
    inputs = model.prepare(images, targets)
    contrasts = [t.contrast for t in targets]
    if all(c is None for c in contrasts):
        return inputs
    if any(c is None for c in contrasts):
        raise InputError("a batch must be all contrastive targets or none")
    swapped = [contrast_target(model, image, t, tokens) for image, t, tokens in
               zip(images, targets, word_features(inputs))]
    inputs.contrast = model.prepare(images, swapped)
    for b, (t, before, after) in enumerate(zip(targets, word_features(inputs), word_features(inputs.contrast))):
        if t.kind == "token" and not _one_swap(before, after, t.token):
            raise InputError(_swap_error(t, before, after))
    return inputs


def contrasts_itself(inputs: ExplainInputs) -> bool:
    """Every item's contrast is its own target: the difference is 0 for any image, nothing to attribute."""
    return inputs.contrast is not None and all(
        a.kind == b.kind and a.text == b.text and a.question == b.question
        for a, b in zip(inputs.targets, inputs.contrast.targets))


def contrast_target(model: VLModel, image, target: Target, tokens: list[tuple[int, str]] | None = None) -> Target:
    """The target with its contrast in its place, as a plain (non-contrastive) target."""
    if target.contrast is None:
        return target
    if target.kind == "answer":
        return Target("answer", target.contrast, question=target.question)
    if tokens is None:
        tokens = word_features(model.prepare([image], [dataclasses.replace(target, contrast=None)]))[0]
    span = token_span(target.text, [t for _, t in tokens], target.token)
    if span is None:
        raise InputError(f"cannot find token {target.token} of {target.text!r} in the caption's text")
    lo, hi = span
    return Target("token", target.text[:lo] + target.contrast + target.text[hi:], token=target.token)


def token_span(text: str, tokens: list[str], index: int) -> tuple[int, int] | None:
    """(start, end) characters of token `index` in `text`, matching the tokens in order (case-insensitive;
    WordPiece '##' and byte-level 'Ġ' markers ignored); None when the tokens cannot be followed."""
    low, cursor = text.lower(), 0
    for i, tok in enumerate(tokens):
        piece = tok.lower().removeprefix("##").lstrip("\u0120▁ ").strip()
        if not piece:
            if i == index:
                return None
            continue
        at = low.find(piece, cursor)
        if at < 0:
            return None
        if i == index:
            return at, at + len(piece)
        cursor = at + len(piece)
    return None


def _one_swap(before: list[tuple[int, str]], after: list[tuple[int, str]], index: int) -> bool:
    return (len(before) == len(after) and [p for p, _ in before] == [p for p, _ in after]
            and all(a[1] == b[1] for i, (a, b) in enumerate(zip(before, after)) if i != index))


def _swap_error(target: Target, before: list[tuple[int, str]], after: list[tuple[int, str]]) -> str:
    word = before[target.token][1] if 0 <= target.token < len(before) else "?"
    extra = max(0, len(after) - len(before))
    changed = [t for _, t in after[target.token: target.token + 1 + extra]]
    return (f"the contrast {target.contrast!r} does not take the place of token {target.token} ({word!r}) as one "
            f"token: this model's tokenizer reads it as {' '.join(changed) or 'nothing'!r}; choose a word the "
            f"model writes as one token")


# --- text features ------------------------------------------------------------------------------------------
def word_features(inputs: ExplainInputs) -> list[list[tuple[int, str]]]:
    """Per item, (position in the text-embedding sequence, token) of every reported word (specials left out).

    Adapters that report tokens at other positions than 0 … T-1 say so in extra["text_positions"] (B, T)."""
    positions = inputs.extra.get("text_positions")
    out = []
    for b, tokens in enumerate(inputs.text_tokens):
        where = positions[b].tolist() if positions is not None else range(len(tokens))
        out.append([(int(p), t) for p, t in zip(where, tokens) if not SPECIAL.match(t)])
    return out


class TextGate:
    """Scales the word embeddings of the reported words by a gate in [0, 1] (1: the word, 0: a zero vector).

    A forward hook on `model.text_embedding` multiplies its output (n, S, D) by a per-position factor built from
    gate (n, F): ones everywhere (specials, padding, positions) except the F word positions of each item."""

    def __init__(self, model: VLModel, inputs: ExplainInputs):
        self.model = model
        feats = word_features(inputs)
        self.n_features = max((len(f) for f in feats), default=0)
        pos = torch.full((len(feats), max(1, self.n_features)), -1, dtype=torch.long)
        for b, f in enumerate(feats):
            for j, (p, _) in enumerate(f):
                pos[b, j] = p
        self.positions = pos.to(inputs.pixels.device)                       # (B, F), -1 = no word
        self.valid = self.positions >= 0

    def ones(self) -> torch.Tensor:
        return torch.ones(self.positions.shape, device=self.positions.device)   # (B, F)

    def baseline(self) -> torch.Tensor:
        return torch.zeros(self.positions.shape, device=self.positions.device)

    @contextmanager
    def applied(self, gate: torch.Tensor) -> Iterator[None]:
        k = gate.shape[0] // self.positions.shape[0]
        pos = torch.cat([self.positions] * k)                                 # (n, F)

        def scale(module, args, out):
            n, S = out.shape[:2]
            if n != pos.shape[0] or int(pos.max()) >= S:
                raise RuntimeError(f"the text embedding saw ({n}, {S}) tokens; the gate covers {tuple(pos.shape)}")
            where = torch.where(pos >= 0, pos, S)                               # no word -> a dummy column
            factor = torch.ones(n, S + 1, device=out.device, dtype=gate.dtype).scatter(1, where, gate)
            return out * factor[:, :S, None].to(out.dtype)

        layer = self.model.text_embedding
        first = layer.register_forward_hook(scale, prepend=True)          # before Captum's layer hooks …
        last = layer.register_forward_hook(lambda m, a, out: out.clone())  # … and after: a layer method's output is
        try:                                                              # a leaf the model may add to in place
            yield
        finally:
            first.remove()
            last.remove()


# --- image baselines and pooling ------------------------------------------------------------------------------
BASELINES = ("median", "blur", "black", "mean")


def image_baseline(pixels: torch.Tensor, kind: str | float = "median",
                   grid: tuple[int, int] | None = None) -> torch.Tensor:
    """(B, 3, H, W) reference image: "median" colour everywhere (an empty canvas), a strong "blur", "black", "mean"
    colour, or a constant value. Pixels are in the model's own normalisation; "black" is its zero."""
    if isinstance(kind, (int, float)):
        return torch.full_like(pixels, float(kind))
    if kind == "median":
        colour = pixels.float().flatten(2).median(-1).values.to(pixels.dtype)          # (B, 3)
        return colour[..., None, None].expand_as(pixels).clone()
    if kind == "mean":
        return pixels.mean((2, 3), keepdim=True).expand_as(pixels).clone()
    if kind == "black":
        return torch.zeros_like(pixels)
    if kind == "blur":
        H, W = pixels.shape[-2:]
        h, w = grid or (8, 8)
        small = F.adaptive_avg_pool2d(pixels.float(), (max(1, h // 2), max(1, w // 2)))
        return F.interpolate(small, size=(H, W), mode="bilinear", align_corners=False).to(pixels.dtype)
    raise InputError(f"unknown baseline {kind!r}; known: {', '.join(BASELINES)} or a number")


def pool_to_grid(attr: torch.Tensor, grid: tuple[int, int], reduce: str = "sum") -> torch.Tensor:
    """(B, C, H, W) pixel attributions -> (B, h, w).

    "sum": summed over channels and over each patch's pixels (gradient methods: attributions add up);
    "mean": averaged instead (perturbation methods give every element of a window or feature the same value)."""
    a = attr.float().sum(1, keepdim=True) if reduce == "sum" else attr.float().mean(1, keepdim=True)  # (B, 1, H, W)
    H, W = a.shape[-2:]
    h, w = grid
    pooled = F.adaptive_avg_pool2d(a, grid)                                  # exact blocks when H, W divide
    return (pooled * (H * W / (h * w)) if reduce == "sum" else pooled)[:, 0]


def patch_mask(pixels: torch.Tensor, grid: tuple[int, int], groups: tuple[int, int] | None = None) -> torch.Tensor:
    """(1, 1, H, W) long: the patch (or group of patches) each pixel belongs to, raster order from 0."""
    H, W = pixels.shape[-2:]
    h, w = groups or grid
    rows = torch.arange(H, device=pixels.device) * h // H
    cols = torch.arange(W, device=pixels.device) * w // W
    return (rows[:, None] * w + cols[None, :])[None, None]


def max_rows(fn: ScoreFunction, requested: int | None = None) -> int:
    """Rows per forward pass: what was asked, else a fixed number on CPU, else what half the GPU's free memory
    holds for a forward + backward of these inputs (measured once per model and kind of target)."""
    if requested:
        return max(1, int(requested))
    device = fn.inputs.pixels.device
    if device.type != "cuda":
        return CPU_ROWS
    key = (id(fn.model), fn.inputs.targets[0].kind == "answer")
    if key not in _ROW_BYTES:
        _ROW_BYTES[key] = _bytes_per_row(fn, device)
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(fn.batch, min(GPU_ROWS_CAP, free // 2 // _ROW_BYTES[key])))


_ROW_BYTES: dict[tuple[int, bool], int] = {}
_PROBE_ITEMS = 8


def _bytes_per_row(fn: ScoreFunction, device: torch.device) -> int:
    """Peak GPU memory of a forward + backward over _PROBE_ITEMS copies of the inputs, per row."""
    n = fn.batch * _PROBE_ITEMS
    pixels = fn.expand(n).pixels.detach().clone().requires_grad_(True)
    torch.cuda.synchronize(device)
    start = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.enable_grad():
        torch.autograd.grad(fn(pixels).sum(), pixels)
    torch.cuda.synchronize(device)
    return max(1, int((torch.cuda.max_memory_allocated(device) - start) / n))
