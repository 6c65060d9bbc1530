"""What every hub adapter shares: device and precision, images onto a fixed patch grid, batched generation with
token probabilities, teacher-forced log-probabilities, and text→image attention reshaped onto the grid.

Per-family differences (which submodules, which special tokens, where the image keys sit in the attention) live in
the subclasses in blip.py, vilt.py, git.py and encoder_decoder.py.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import torch
from PIL import Image
from torch import nn

from ...errors import InputError, WeightsMissingError
from ..base import Answer, Caption, Decoding, ExplainInputs, ModelInfo, Target, VLModel
from ..devices import choose_device, choose_dtype
from ..fusion import FusionInput
from ._catalogue import Family

MAX_BATCH = 32                          # images per forward pass; longer lists are split
ALTERNATIVES = 5                        # runner-up tokens a caption records at each step (the chosen one among them)


def pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def renormalise(attn: torch.Tensor) -> torch.Tensor:
    """Rows over the patch columns summing to 1 (the model's rows also covered CLS or text keys)."""
    attn = attn.float()
    return attn / attn.sum(-1, keepdim=True).clamp_min(1e-12)


def step_logprobs(out: Any, new: torch.Tensor,
                  top: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(R, N) log-probability the model gave each generated token, from the raw (unprocessed) logits of `generate`;
    with `top` > 0 also the `top` most probable tokens at each step, (R, N, top) ids and log-probabilities.

    Raw logits, not the processed scores: temperature, top-p or suppressed tokens change what is picked, not the
    probability reported. Beam search rows are followed through `beam_indices`; positions after a beam ended are 0.
    """
    R, N = new.shape
    beams = getattr(out, "beam_indices", None)
    if beams is not None:
        rows = beams[:, :N]
        valid = rows >= 0
        rows = rows.clamp_min(0)
    else:
        rows = torch.arange(R, device=new.device)[:, None].expand(R, N)
        valid = torch.ones_like(new, dtype=torch.bool)
    lp = torch.zeros(R, N, device=new.device)
    top_lp = torch.zeros(R, N, top, device=new.device)
    top_ids = torch.zeros(R, N, top, dtype=torch.long, device=new.device)
    for t in range(N):
        step = out.logits[t].float().log_softmax(-1)[rows[:, t]]  # (R, V)
        lp[:, t] = step.gather(-1, new[:, t, None])[:, 0]
        if top:
            top_lp[:, t], top_ids[:, t] = step.topk(top, dim=-1)
    return lp.masked_fill(~valid, 0.0), top_ids, top_lp


class PatchTap(nn.Identity):
    """The `image_embedding` handle: an identity module whose output is the image patch tokens (B, h*w, D).

    A forward hook on the model's patch-embedding layer routes its output through this module (flattening a conv's
    (B, D, h, w) and folding it back), so Captum layer methods and hooks see patch tokens in raster order, before
    position embeddings and without CLS, while the model's weights and state dict stay untouched.
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.handle = layer.register_forward_hook(self._route)

    def _route(self, module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        if out.dim() == 4:                                   # conv: (B, D, h, w)
            B, D, h, w = out.shape
            tokens = self(out.flatten(2).transpose(1, 2))    # (B, h*w, D)
            return tokens.transpose(1, 2).reshape(B, D, h, w)
        return self(out)                                     # already (B, h*w, D)


class HubModel(VLModel):
    """A transformers vision-language model behind the mmdemo protocol.

    Images: `caption` and `answer` see exactly what the checkpoint's own image processor (AutoImageProcessor) makes of
    a photo. Explanations (`prepare`) see the whole photo at `info.input_size`, so every map lies on
    `info.patch_grid` and each cell covers the part of the photo the user sees: for BLIP and ViT that is the
    processor's own output; families whose processor crops (GIT) or keeps the aspect ratio (ViLT) set `square_first`
    and the photo is stretched to a square before their processor sees it (identical for square photos).
    Attention is eager (attention probabilities are what the maps show; SDPA/flash kernels do not return them).
    Parameters are frozen: gradients flow only to pixels and to activations that explanation methods hook.
    """

    family: ClassVar[Family]
    model_class: ClassVar[str]          # the transformers class that loads the checkpoint
    probe_class: ClassVar[type | None] = None    # reads its attention for rollout and relevance (_probe.HubProbe)
    vision_path: ClassVar[str] = ""     # Grad-CAM's layer: a dotted path into self.model ("-2": an index)
    about: ClassVar[str] = ""           # first half of ModelInfo.knows
    square_first: ClassVar[bool] = False  # explanations stretch the photo to a square before the processor sees it
    max_batch: int = MAX_BATCH

    def __init__(self, model: nn.Module, tokenizer: Any, image_processor: Any, *, name: str,
                 weights: str = "", revision: str = ""):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        first = next(model.parameters())
        self.device, self.dtype = first.device, first.dtype
        vision = self._vision_config()
        self.input_size = pair(vision.image_size)           # (H, W)
        self.patch = pair(vision.patch_size)
        self.grid = (self.input_size[0] // self.patch[0], self.input_size[1] // self.patch[1])
        self.image_processor = image_processor
        self._tap = PatchTap(self._patch_layer())
        H, W = self.input_size
        knows = f"{self._about()}; sees the image resized to {H}×{W} px as a {self.grid[0]}×{self.grid[1]} grid of patches"
        self.info = ModelInfo(name=name, tasks=self.family.tasks, fusion=self.family.fusion, input_size=self.input_size,
                              patch_grid=self.grid, device=str(self.device), dtype=str(self.dtype).removeprefix("torch."),
                              weights=weights, revision=revision, knows=knows)

    # --- loading ----------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, location: str, *, name: str, device: str | None = None, weights: str = "",
                        revision: str = "", **hub: Any) -> "HubModel":
        """Load model, tokenizer and image processor from a folder or hub id; `hub` holds cache_dir/local_files_only."""
        import transformers

        dev = choose_device(device)
        try:
            model = getattr(transformers, cls.model_class).from_pretrained(
                location, dtype=choose_dtype(dev), attn_implementation="eager", **hub)
            tokenizer = transformers.AutoTokenizer.from_pretrained(location, **hub)
            image_processor = transformers.AutoImageProcessor.from_pretrained(location, **hub)
        except OSError as e:            # a file missing from the folder or cache (local_files_only never waits)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WeightsMissingError(f"cannot load {name!r} from {location}: {first}") from None
        return cls(model.to(dev), tokenizer, image_processor, name=name, weights=weights or location, revision=revision)

    # --- per-family hooks -------------------------------------------------------------------------------------
    def _about(self) -> str:
        """What the model is, for ModelInfo.knows (the patch grid is appended)."""
        return self.about

    def _vision_config(self) -> Any:
        """The config with image_size and patch_size of the vision tower."""
        raise NotImplementedError

    def _patch_layer(self) -> nn.Module:
        """The layer that turns pixels into patch tokens (conv or ViT patch embedding)."""
        raise NotImplementedError

    # --- what explanations need, from the class attributes above --------------------------------------------
    def attention_probe(self) -> Any:
        return self.probe_class(self) if self.probe_class is not None else None

    @property
    def vision_layer(self) -> nn.Module:
        """Grad-CAM's layer: the last image tokens before they meet the text (`vision_path`)."""
        layer: Any = self.model
        for part in filter(None, self.vision_path.split(".")):
            layer = layer[int(part)] if part.lstrip("-").isdigit() else getattr(layer, part)
        return layer if self.vision_path else self.image_embedding

    # --- shared plumbing --------------------------------------------------------------------------------------
    @property
    def image_embedding(self) -> nn.Module:
        """Patch tokens (B, h*w, D) in raster order, before position embeddings, CLS excluded (see PatchTap)."""
        return self._tap

    def _processed(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """The checkpoint's own image processor on the images: pixel_values (B, 3, H, W) on the model's device and
        dtype, and whatever else it returns (ViLT: pixel_mask (B, H, W), 0 where a smaller image was padded)."""
        rgb = []
        for im in images:
            if not isinstance(im, Image.Image):
                raise InputError(f"expected a PIL image, got {type(im).__name__}")
            rgb.append(im.convert("RGB"))
        try:
            out = self.image_processor(images=rgb, return_tensors="pt")
        except ValueError as e:             # e.g. ViLT: a side would shrink to 0 px on a very long, thin image
            sizes = ", ".join(f"{im.width}×{im.height}" for im in rgb)
            raise InputError(f"{self.info.name!r} cannot preprocess images of {sizes} px: "
                             f"{str(e).strip().splitlines()[0]}") from None
        return {k: v.to(self.device, self.dtype) if k == "pixel_values" else v.to(self.device) for k, v in out.items()}

    def _pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels, exactly as the checkpoint's image processor makes them."""
        return self._processed(images)["pixel_values"]

    def _explain_pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(B, 3, H, W) at `info.input_size`: the whole photo, through the image processor (after stretching it to a
        square where the family sets `square_first`), so explanation maps lie on `info.patch_grid`."""
        if self.square_first:
            images = [self._square(im) for im in images]
        pixels = self._pixels(images)
        if tuple(pixels.shape[-2:]) != self.input_size:
            H, W = self.input_size
            raise InputError(f"{self.info.name!r}: its image processor makes {pixels.shape[-2]}×{pixels.shape[-1]} px "
                             f"inputs but its vision config expects {H}×{W}; explanations need the config's size")
        return pixels

    def _square(self, im: Any) -> Any:
        """The photo stretched to a square of its longer side, at most twice the input's (the processor shrinks it)."""
        if not isinstance(im, Image.Image) or im.width == im.height:
            return im
        side = min(max(im.size), 2 * max(self.input_size))
        return im.resize((side, side), self._resample())

    def _resample(self) -> Image.Resampling:
        """The image processor's resampling filter (bicubic when it names none)."""
        try:
            return Image.Resampling(int(getattr(self.image_processor, "resample", Image.Resampling.BICUBIC)))
        except (TypeError, ValueError):
            return Image.Resampling.BICUBIC

    def _require(self, task: str) -> None:
        if task not in self.info.tasks:
            what = {"caption": "caption images", "vqa": "answer questions"}[task]
            raise InputError(f"{self.info.name!r} does not {what} (its tasks: {', '.join(self.info.tasks)})")

    def _display(self, ids: Sequence[int]) -> list[str]:
        """One readable string per token id (WordPiece '##s' stays, GPT-2 'Ġcat' becomes 'cat')."""
        out = []
        for tok in self.tokenizer.convert_ids_to_tokens(list(ids)):
            text = self.tokenizer.convert_tokens_to_string([tok])
            out.append(text.strip() or text)
        return out

    @staticmethod
    def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
        return [items[i:i + size] for i in range(0, len(items), size)]

    def _questions(self, questions: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        clean = [q.strip() if isinstance(q, str) else "" for q in questions]
        if any(not q for q in clean):
            raise InputError("a question is empty")
        enc = self.tokenizer(clean, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    def _suppressed(self) -> list[int]:
        """Special tokens generated text never contains (all but the end token), so it decodes to what it scores."""
        ids = set(self.tokenizer.all_special_ids) | {self.start_id, self.pad_id}
        return sorted(i for i in ids if i is not None and i != self.end_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.info.name!r}, device={self.info.device}, dtype={self.info.dtype})"

    # --- defaults for the task a family does not do ---------------------------------------------------------
    def caption(self, images: Sequence[Image.Image], decoding: Decoding | None = None) -> list[Caption]:
        self._require("caption")
        raise NotImplementedError

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str], top_k: int = 5) -> list[Answer]:
        self._require("vqa")
        raise NotImplementedError


class Captioner(HubModel):
    """Families that write captions token by token: BLIP, GIT, VisionEncoderDecoder.

    Subclasses say which token starts and ends a caption, how to generate from a one-token prompt, and how to run a
    teacher-forced forward pass that returns logits aligned with the ids (logits[:, i] predicts ids[:, i + 1]) and,
    on request, the text→image attention of every layer over the patch columns only: (L, B, heads, S, h*w).
    """

    start_id: int                       # set by subclasses in __init__
    end_id: int

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return self.end_id if pad is None else int(pad)

    def _generate(self, pixels: torch.Tensor, prompt: torch.Tensor, **kw: Any) -> Any:
        raise NotImplementedError

    def _forward(self, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                 attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced logits (B, S, V) and optionally attention (L, B, heads, S, h*w), from pixels."""
        return self._decode(self._encode(pixels), ids, mask, attentions)

    # families that read a separate image encoder's output implement these three (see `fusion_input`)
    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, N, D) the image tokens the text side reads (the last h*w of them the patch grid)."""
        raise NotImplementedError

    def _decode(self, tokens: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`_forward` from the image tokens of `_encode`."""
        raise NotImplementedError

    def _projections(self) -> list[nn.Module]:
        """The modules through which alone the text side reads the image tokens (cross-attention keys, values)."""
        return []

    def fusion_input(self) -> "CaptionFusion | None":
        if type(self)._encode is Captioner._encode:
            return None
        if "_fusion" not in self.__dict__:
            self._fusion = CaptionFusion(self)
        return self._fusion

    def _image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """The encoded image, from the image cache when the family has a fusion input."""
        fusion = self.fusion_input()
        return fusion.encoded(pixels) if fusion is not None else self._encode(pixels)

    @staticmethod
    def _decoding(d: Decoding) -> dict[str, Any]:
        """`Decoding` as `generate` keywords: greedy, beam search, or nucleus sampling (top_k off, so top-p alone
        shapes the distribution). At least one token: a real captioner never stops at once; a tiny random one might."""
        kw: dict[str, Any] = {"min_new_tokens": 1, "max_new_tokens": d.max_new_tokens, "num_beams": 1,
                              "do_sample": False}
        if d.strategy == "beam":
            kw["num_beams"] = d.beams
        elif d.strategy == "nucleus":
            kw |= {"do_sample": True, "top_p": d.top_p, "top_k": 0, "temperature": d.temperature}
        return kw

    @torch.inference_mode()
    def caption(self, images: Sequence[Image.Image], decoding: Decoding | None = None) -> list[Caption]:
        """Captions with the probability the model gave each token when it chose it (raw, before any warping)."""
        d = decoding or Decoding()
        kw = self._decoding(d)
        seeded = d.sampling and d.seed is not None
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [], enabled=seeded):
            if seeded:
                torch.manual_seed(d.seed)
            return self._captions(list(images), kw)

    def _captions(self, images: list[Image.Image], kw: dict[str, Any]) -> list[Caption]:
        captions: list[Caption] = []
        for chunk in self._batches(images, self.max_batch):
            pixels = self._pixels(chunk)
            prompt = torch.full((len(chunk), 1), self.start_id, dtype=torch.long, device=self.device)  # (B, 1)
            try:
                out = self._generate(pixels, prompt, eos_token_id=self.end_id, pad_token_id=self.pad_id,
                                     suppress_tokens=self._suppressed(), return_dict_in_generate=True,
                                     output_logits=True, **kw)
            except ValueError as e:
                raise InputError(f"bad decoding settings {kw}: {str(e).splitlines()[0]}") from None
            new = out.sequences[:, prompt.shape[1]:]                     # (B, N) generated ids
            specials = set(self.tokenizer.all_special_ids)
            lp, top_ids, top_lp = step_logprobs(out, new, ALTERNATIVES + len(specials))  # (B, N), (B, N, k) ×2
            for ids, lps, alt_ids, alt_lps in zip(new.tolist(), lp.tolist(), top_ids.tolist(), top_lp.tolist()):
                n = ids.index(self.end_id) if self.end_id in ids else len(ids)
                text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
                alternatives = []                                    # per token: the words (not specials) first
                for a, qs in zip(alt_ids[:n], alt_lps[:n]):
                    words = [(i, q) for i, q in zip(a, qs) if i not in specials][:ALTERNATIVES]
                    alternatives.append(list(zip(self._display([i for i, _ in words]),
                                                 (math.exp(q) for _, q in words))))
                captions.append(Caption(text, [(t, math.exp(p)) for t, p in zip(self._display(ids[:n]), lps[:n])],
                                        alternatives))
        return captions

    def _caption_ids(self, text: str) -> list[int]:
        ids = self.tokenizer(text.strip(), add_special_tokens=False)["input_ids"] if text.strip() else []
        if not ids:
            raise InputError("the caption to explain is empty")
        return ids

    def prepare(self, images: Sequence[Image.Image], targets: Sequence[Target]) -> ExplainInputs:
        """Teacher-forcing inputs: ids = [start, t1 … tn] (right-padded), one row of weights over t1 … tn.

        A "caption" target weighs every token (score = sum of their log-probs, the end token not included); a
        "token" target weighs token `target.token`, an index into `text_tokens` (the caption as this tokenizer
        splits it; the same as Caption.tokens for a caption this model wrote). extra["text_positions"] (B, T) gives
        each reported token's position in the `text_embedding` sequence (t_j sits at j + 1, after the start token).
        """
        if len(images) != len(targets):
            raise InputError(f"{len(images)} images but {len(targets)} targets")
        self._require("caption")
        rows = []
        for t in targets:
            if t.kind not in ("caption", "token"):
                raise InputError(f"{self.info.name!r} explains captions and caption tokens, not {t.kind!r} targets")
            ids = self._caption_ids(t.text) + ([self.end_id] if t.kind == "caption" and t.end else [])
            if t.kind == "token" and not 0 <= t.token < len(ids):
                raise InputError(f"token index {t.token} is outside the caption's {len(ids)} tokens")
            rows.append(ids)
        B, T = len(rows), max(len(r) for r in rows)
        ids = torch.full((B, T + 1), self.pad_id, dtype=torch.long)     # (B, S = T + 1)
        mask = torch.zeros(B, T + 1, dtype=torch.long)
        weight = torch.zeros(B, T)                                      # (B, T) which log-probs the score sums
        for i, (r, t) in enumerate(zip(rows, targets)):
            ids[i, 0], ids[i, 1:len(r) + 1], mask[i, :len(r) + 1] = self.start_id, torch.tensor(r), 1
            if t.kind == "caption":
                weight[i, :len(r)] = 1
            else:
                weight[i, t.token] = 1
        extra = {"input_ids": ids, "attention_mask": mask, "weight": weight,
                 "text_positions": torch.arange(1, T + 1).expand(B, T).clone()}
        inputs = ExplainInputs(self._explain_pixels(images), list(targets), [self._display(r) for r in rows], extra)
        return inputs.to(self.device)

    def score(self, inputs: ExplainInputs, *, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) teacher-forced log-probability of each target (float32), differentiable w.r.t. pixels."""
        pixels = inputs.pixels if pixels is None else pixels
        extra = inputs.tiled(pixels.shape[0]).extra
        ids, mask, weight = extra["input_ids"], extra["attention_mask"], extra["weight"]
        logits, _ = self._forward(pixels.to(self.dtype), ids, mask)      # (B, S, V)
        return teacher_forced(logits, ids, weight)

    # --- fine-tuning (mmdemo.train.finetune): the loss is -score, so every captioner can learn from corrections ---
    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Every weight of the checkpoint, gradients switched on (they stay off outside fine-tuning)."""
        self.model.requires_grad_(True)
        return list(self.model.named_parameters())

    def train_mode(self, on: bool = True) -> None:
        self.model.train(on).requires_grad_(on)

    def save(self, folder: Any, training: dict[str, Any]) -> None:
        """`save_pretrained` of the model, its tokenizer and image processor (a folder `mmdemo.load` opens), and
        `training` in mmdemo_training.json."""
        import json
        from pathlib import Path

        folder = Path(folder)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)
        (folder / "mmdemo_training.json").write_text(json.dumps(training, indent=2))

    @torch.no_grad()
    def attention(self, inputs: ExplainInputs) -> torch.Tensor:
        """(L, B, heads, T, h*w) float32 on CPU: row j is the attention while predicting caption token j.

        Rows are renormalised over the patch columns (the image CLS token, and for GIT the text keys, are dropped).
        """
        ids, mask = inputs.extra["input_ids"], inputs.extra["attention_mask"]
        if self.fusion_input() is not None:                              # the image encoded once (cached)
            _, attn = self._decode(self._image_tokens(inputs.pixels), ids, mask, attentions=True)
        else:
            _, attn = self._forward(inputs.pixels, ids, mask, attentions=True)  # (L, B, heads, S, h*w)
        return renormalise(attn[:, :, :, :-1]).cpu()


def teacher_forced(logits: torch.Tensor, ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B,) Σ weight · log p(ids[:, j + 1] | ids[:, :j + 1]) from logits (B, S, V) aligned with ids (B, S)."""
    lp = logits[:, :-1].float().log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]  # (B, S-1)
    return (lp * weight).sum(-1)


class CaptionFusion(FusionInput):
    """A captioner's fusion input: its `_encode` output, scored by `_decode` with teacher forcing."""

    def __init__(self, model: Captioner):
        super().__init__()
        self.model = model
        self.n_patches = model.grid[0] * model.grid[1]

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model._encode(pixels.to(self.model.dtype))

    def projections(self) -> list[nn.Module]:
        return self.model._projections()

    def score_tokens(self, inputs: ExplainInputs, tokens: torch.Tensor, *, trim: bool = False) -> torch.Tensor:
        extra = inputs.tiled(tokens.shape[0]).extra
        ids, mask, weight = extra["input_ids"], extra["attention_mask"], extra["weight"]
        if trim:                        # causal: what follows the last scored token changes no score
            cols = weight.abs().sum(0).nonzero()
            keep = int(cols.max()) + 1 if len(cols) else 1
            ids, mask, weight = ids[:, :keep + 1], mask[:, :keep + 1], weight[:, :keep]
        logits, _ = self.model._decode(tokens.to(self.model.dtype), ids, mask)
        return teacher_forced(logits, ids, weight)
