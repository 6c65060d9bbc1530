"""The embedded shapes models behind the common protocol: caption, answer, and the explanation surface."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ...errors import InputError
from ..base import Answer, Caption, Decoding, ExplainInputs, ModelInfo, Target, VLModel
from ..devices import choose_device
from . import decode, weights
from .preprocess import pad_ids, to_pixels
from .tokenizer import SPECIALS, build_tokenizer, join, vocabulary

KNOWS = ("Trained only on the synthetic shapes world: circles, squares, triangles and stars in six colours on a "
         "light background. It cannot describe photos.")
MAX_QUESTION_CHARS = 500
FUSION_TEXT = {"early": "early (single stream)", "cross": "cross-attention (two streams)",
               "late": "late (decision level)"}


class ShapesModel(VLModel):
    def __init__(self, net, *, name: str, device: str | torch.device = "cpu", source: str = "", revision: str = ""):
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        cfg = net.cfg
        self.tok = build_tokenizer(extra=cfg.extra_words)
        self.vocab = vocabulary(cfg.extra_words)
        self.answers = cfg.answer_labels
        self.info = ModelInfo(
            name=name, tasks=("caption", "vqa"), fusion=cfg.fusion, input_size=(cfg.image_size, cfg.image_size),
            patch_grid=(cfg.grid, cfg.grid), device=str(self.device), dtype="float32", weights=source,
            revision=revision, knows=KNOWS, domain="shapes",
            attention_layers=cfg.fusion_layers if cfg.fusion != "late" else 1)   # late: its pooling query

    # --- inputs ----------------------------------------------------------------------------
    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(B, 3, S, S) float in [0, 1]."""
        if not len(images):
            raise InputError("no images given")
        arr = np.stack([to_pixels(im, self.net.cfg.image_size) for im in images])
        return torch.from_numpy(arr).to(self.device).float().div_(255)

    def question_ids(self, questions: Sequence[str]) -> torch.Tensor:
        rows = []
        for q in questions:
            q = (q or "").strip()
            if not q:
                raise InputError("the question is empty")
            if len(q) > MAX_QUESTION_CHARS:
                raise InputError(f"the question is {len(q)} characters long; the limit is {MAX_QUESTION_CHARS}")
            rows.append(self.tok.encode(q).ids)
        return pad_ids(rows, self.device)

    def caption_ids(self, captions: Sequence[str]) -> torch.Tensor:
        """[CLS] words [SEP], padded: (B, T)."""
        return pad_ids([self.tok.encode(c).ids for c in captions], self.device)

    # --- the protocol ----------------------------------------------------------------------
    @torch.inference_mode()
    def caption(self, images: Sequence[Image.Image], decoding: Decoding | None = None) -> list[Caption]:
        d = decoding or Decoding()
        image = self.net.encode_image(self.pixels(images))
        max_tokens = min(d.max_new_tokens, self.net.cfg.max_text - 2)
        if d.strategy == "nucleus":
            gen = torch.Generator(device=self.device).manual_seed(d.seed) if d.seed is not None else None
            ids, probs, tops = decode.sample(self.net, image, max_tokens, top_p=d.top_p, temperature=d.temperature,
                                             generator=gen)
        elif d.strategy == "beam" and d.beams > 1:
            ids, probs, tops = decode.beam(self.net, image, max_tokens, num_beams=d.beams)
        else:
            ids, probs, tops = decode.greedy(self.net, image, max_tokens)
        return [self._caption(i, p, t) for i, p, t in zip(ids, probs, tops)]

    def _caption(self, ids: list[int], probs: list[float], tops: list[list[tuple[int, float]]]) -> Caption:
        tokens: list[tuple[str, float]] = []
        alternatives: list[list[tuple[str, float]]] = []
        for i, p, top in zip(ids, probs, tops):
            piece = self.vocab[i]
            if piece.startswith("##") and tokens:  # a word piece joins the word before it
                word, q = tokens[-1]
                tokens[-1] = (word + piece[2:], q * p)
            else:
                tokens.append((piece, p))
                alternatives.append([(self.vocab[j], float(q)) for j, q in top      # its first piece's runner-ups
                                     if self.vocab[j] not in SPECIALS])
        return Caption(join([t for t, _ in tokens]), [(t, float(p)) for t, p in tokens], alternatives)

    @torch.inference_mode()
    def answer(self, images: Sequence[Image.Image], questions: Sequence[str], top_k: int = 5) -> list[Answer]:
        if len(images) != len(questions):
            raise InputError(f"{len(images)} images but {len(questions)} questions")
        q = self.question_ids(questions)
        probs = self.net.answer_logits(self.net.encode_image(self.pixels(images)), q).softmax(-1)   # (B, A)
        k = max(1, min(top_k, probs.shape[1]))
        top = probs.topk(k, dim=-1)
        labels = self.answers
        return [Answer(labels[i[0]], float(p[0]), [(labels[j], float(pj)) for j, pj in zip(i, p)])
                for p, i in zip(top.values.tolist(), top.indices.tolist())]

    # --- explanation surface -------------------------------------------------------------------
    def prepare(self, images: Sequence[Image.Image], targets: Sequence[Target]) -> ExplainInputs:
        kinds = {t.kind == "answer" for t in targets}
        if len(kinds) != 1:
            raise InputError("a batch must be all answers or all captions")
        pixels = self.pixels(images)
        if targets[0].kind == "answer":
            for t in targets:
                if t.text not in self.answers:
                    raise InputError(f"{t.text!r} is not an answer this model knows; known: {', '.join(self.answers)}")
            ids = self.question_ids([t.question or "" for t in targets])
            labels = torch.tensor([self.answers.index(t.text) for t in targets], device=self.device)
            tokens = [self.tok.encode(t.question or "").tokens for t in targets]
            return ExplainInputs(pixels, list(targets), tokens, {"ids": ids, "labels": labels, "causal": False})
        ids = self.caption_ids([t.text for t in targets])                               # (B, T)
        n_words = (ids != 0).sum(1) - 2                                                   # without [CLS], [SEP]
        positions = torch.zeros_like(ids[:, 1:], dtype=torch.bool)                        # which next-token terms count
        for b, t in enumerate(targets):
            if t.kind == "token":
                if not 0 <= t.token < int(n_words[b]):
                    raise InputError(f"token {t.token} is out of range; the caption has {int(n_words[b])} tokens")
                positions[b, t.token] = True
            else:                                                                         # [SEP] too: t.end
                positions[b, : int(n_words[b]) + int(t.end)] = True
        tokens = [self.tok.encode(t.text).tokens for t in targets]
        return ExplainInputs(pixels, list(targets), tokens, {"ids": ids, "positions": positions, "causal": True})

    def score(self, inputs: ExplainInputs, *, pixels: torch.Tensor | None = None) -> torch.Tensor:
        pixels = inputs.pixels if pixels is None else pixels
        ids = inputs.extra["ids"]
        if ids.shape[0] != pixels.shape[0]:  # attribution methods expand the batch (steps, windows)
            inputs = inputs.tiled(pixels.shape[0])
            ids = inputs.extra["ids"]
        image = self.net.encode_image(pixels)
        if not inputs.extra["causal"]:
            logp = self.net.answer_logits(image, ids).log_softmax(-1)                    # (B, A)
            return logp.gather(1, inputs.extra["labels"][:, None])[:, 0]
        logp = self.net.caption_logits(image, ids[:, :-1]).log_softmax(-1)               # (B, T-1, V)
        tok = logp.gather(2, ids[:, 1:, None])[..., 0]                                    # (B, T-1)
        return (tok * inputs.extra["positions"]).sum(1)

    def attention(self, inputs: ExplainInputs) -> torch.Tensor:
        """(L, B, heads, T, P) text -> image attention of the fusion layers.

        cross: the cross-attention weights; early: text rows of the joint self-attention over the image
        columns, renormalised to sum to 1; late: the pooling query's attention (the same for every word)."""
        from .attention import record_attention

        with torch.no_grad(), record_attention(self.net) as maps:
            self.score(inputs)
            return maps()

    def attention_probe(self):
        from .attention import ShapesProbe
        return ShapesProbe(self.net)

    @property
    def image_embedding(self) -> torch.nn.Module:
        return self.net.patch_embed

    @property
    def vision_layer(self) -> torch.nn.Module:
        """Grad-CAM's layer: the activation inside the last image block's MLP, (B, P, 4D).

        Grad-CAM weighs channels by their mean gradient and assumes non-negative activations, as after a conv
        net's ReLU. The layer-normed image tokens are signed: Grad-CAM on them did no better than a random map
        here; the GELU output is the transformer's nearest thing to a rectified feature map."""
        return self.net.image_blocks[-1].mlp[1]

    @property
    def text_embedding(self) -> torch.nn.Module:
        return self.net.word_embed

    # --- fine-tuning -------------------------------------------------------------------------------
    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """Every weight but the per-patch class head (a training signal of the world, unused by `score`)."""
        named = [(n, p) for n, p in self.net.named_parameters() if not n.startswith("aux_head.")]
        for _, p in named:
            p.requires_grad_(True)
        return named

    def train_mode(self, on: bool = True) -> None:
        """Training mode, with the stem's batch-norm statistics frozen: a fine-tuning batch of new-looking images
        would otherwise move them, and every image the model knew would be normalised wrongly."""
        self.net.train(on)
        for m in self.net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()

    def save(self, folder, training: dict[str, Any]) -> None:
        weights.save(self.net, Path(folder), training)


def load(name: str, device: str | None = None) -> ShapesModel:
    folder = weights.model_dir(name)
    net = weights.load_net(folder)
    return ShapesModel(net, name=name, device=choose_device(device, gpu=False), source=str(folder),
                       revision=weights.revision(folder))


def load_folder(name: str, device: str | None = None) -> ShapesModel:
    """A shapes model folder anywhere (a fine-tuned one): `name` is its path, as given."""
    folder = Path(name).expanduser()
    net = weights.load_net(folder)
    return ShapesModel(net, name=name, device=choose_device(device, gpu=False), source=str(folder.resolve()),
                       revision=weights.revision(folder))
