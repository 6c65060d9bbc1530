"""ViLT (early fusion, single stream): word tokens and image patch tokens concatenated into one BERT-style
transformer, a classifier over a fixed answer list on its pooled [CLS] output.

Answers see what ViltImageProcessor makes of a photo: shorter side to 384 (longer side at most 1333/800 of that), both
sides cut down to a multiple of 32, aspect kept, so the patch grid follows the photo's shape; a batch is padded to
its largest image and `pixel_mask` marks the padding. Explanations need one grid for every photo (`info.patch_grid`):
there the photo is first stretched to a square, which the processor then brings to the config's `image_size`.

ViLT's own patch sampling keeps at most `max_image_length` patches and shuffles them (torch.multinomial). Here all
patches are kept, put back in raster order through the `patch_index` ViLT returns, so the attention columns land on
the patch grid and results are deterministic.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from PIL import Image
from torch import nn

from ...errors import InputError
from ..base import Answer, ExplainInputs, Target
from ._base import HubModel, renormalise
from ._probe import HubProbe, Step
from ._catalogue import VILT_VQA


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


class ViltAnswerer(HubModel):
    """ViltForQuestionAnswering. Probabilities are per-answer sigmoids of the logits: ViLT's VQA head is trained
    with binary cross-entropy against soft VQA scores, so each answer is scored on its own (top-k need not sum to 1).
    score(answer) = log sigmoid(logit of that answer).
    """

    family = VILT_VQA
    model_class = "ViltForQuestionAnswering"
    probe_class = ViltProbe
    # single stream: the last layer's output reaches the answer only through [CLS]; Grad-CAM reads its input
    vision_path = "vilt.encoder.layer.-2"
    square_first = True                 # the processor keeps the aspect ratio: explanations need a fixed grid

    def __init__(self, *args: Any, **kwargs: Any):
        model = args[0]
        cfg = model.config
        self.labels = [str(cfg.id2label[i]) for i in range(cfg.num_labels)]
        self.label_index = {a.strip().lower(): i for i, a in enumerate(self.labels)}
        self.max_question = int(cfg.max_position_embeddings)
        super().__init__(*args, **kwargs)

    def _about(self) -> str:
        return (f"ViLT: question words and image patches in one transformer; answers are picked from a fixed list of "
                f"{len(self.labels)}")

    def _vision_config(self) -> Any:
        return self.model.config

    def _patch_layer(self) -> nn.Module:
        return self.model.vilt.embeddings.patch_embeddings

    @property
    def text_embedding(self) -> nn.Module:
        return self.model.vilt.embeddings.text_embeddings.word_embeddings

    def _image_tokens(self, pixels: torch.Tensor,
                      pixel_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1 + h*w, D) image tokens, image CLS first then patches in raster order, and their mask (B, 1 + h*w).

        With a `pixel_mask` (B, H, W) that pads smaller images (answers), each row holds as many patches as the largest
        image has: for a smaller image some are padding patches (picked by ViLT, mask 0) that no token attends to."""
        B, _, H, W = pixels.shape
        if pixel_mask is None:
            pixel_mask = torch.ones(B, H, W, dtype=torch.long, device=pixels.device)
        with torch.random.fork_rng(devices=[]):   # visual_embed shuffles with the global CPU generator
            image, mask, (patch_index, _) = self.model.vilt.embeddings.visual_embed(
                pixels, pixel_mask, max_image_length=-1)
        w = W // self.patch[1]                    # patches per row of this batch (the grid follows the photo)
        order = (patch_index[..., 0] * w + patch_index[..., 1]).argsort(dim=-1, stable=True)  # (B, h*w)
        patches = image[:, 1:].gather(1, order[..., None].expand(-1, -1, image.shape[-1]))
        return torch.cat([image[:, :1], patches], 1), torch.cat([mask[:, :1], mask[:, 1:].gather(1, order)], 1)

    def _forward(self, pixels: torch.Tensor, q_ids: torch.Tensor, q_mask: torch.Tensor, attentions: bool = False,
                 pixel_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, answers) logits, and optionally (L, B, heads, Tq, h*w) question-row attention over patch columns."""
        image, image_mask = self._image_tokens(pixels, pixel_mask)
        out = self.model.vilt(input_ids=q_ids, attention_mask=q_mask, image_embeds=image, pixel_mask=image_mask,
                              output_attentions=attentions, return_dict=True)
        logits = self.model.classifier(out.pooler_output)
        if not attentions:
            return logits, None
        Tq = q_ids.shape[1]               # keys: Tq text tokens, the image CLS, then h*w patches
        return logits, torch.stack(out.attentions)[..., :Tq, Tq + 1:]

    @torch.inference_mode()
    def answer(self, images: Sequence[Image.Image], questions: Sequence[str], top_k: int = 5) -> list[Answer]:
        if len(images) != len(questions):
            raise InputError(f"{len(images)} images but {len(questions)} questions")
        k = max(1, min(int(top_k), len(self.labels)))
        answers: list[Answer] = []
        for lo in range(0, len(images), self.max_batch):
            q = self._questions(questions[lo:lo + self.max_batch], self.max_question)
            batch = self._processed(images[lo:lo + self.max_batch])      # aspect kept, padded, with pixel_mask
            logits, _ = self._forward(batch["pixel_values"], q["input_ids"], q["attention_mask"],
                                      pixel_mask=batch.get("pixel_mask"))
            probs, idx = torch.sigmoid(logits.float()).topk(k, dim=-1)  # (B, k)
            for ps, ix in zip(probs.tolist(), idx.tolist()):
                top = [(self.labels[i], p) for i, p in zip(ix, ps)]
                answers.append(Answer(top[0][0], top[0][1], top))
        return answers

    def prepare(self, images: Sequence[Image.Image], targets: Sequence[Target]) -> ExplainInputs:
        """Question ids and the answer's label index; text_tokens are the question's tokens (with [CLS]/[SEP])."""
        if len(images) != len(targets):
            raise InputError(f"{len(images)} images but {len(targets)} targets")
        labels = []
        for t in targets:
            if t.kind != "answer" or not t.question:
                raise InputError(f"{self.info.name!r} explains answers to questions (a target with kind='answer' and a question)")
            i = self.label_index.get(t.text.strip().lower())
            if i is None:
                raise InputError(f"{t.text!r} is not one of the {len(self.labels)} answers {self.info.name!r} can give")
            labels.append(i)
        q = self._questions([t.question or "" for t in targets], self.max_question)
        qmask = q["attention_mask"].cpu()
        tokens = [self._display(row[m.bool()].tolist()) for row, m in zip(q["input_ids"].cpu(), qmask)]
        B, Tq = qmask.shape
        extra = {"question_ids": q["input_ids"], "question_mask": q["attention_mask"],
                 "label": torch.tensor(labels), "text_positions": torch.arange(Tq).expand(B, Tq).clone()}
        return ExplainInputs(self._explain_pixels(images), list(targets), tokens, extra).to(self.device)

    def score(self, inputs: ExplainInputs, *, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) log sigmoid of each target answer's logit, differentiable w.r.t. pixels."""
        pixels = inputs.pixels if pixels is None else pixels
        x = inputs.tiled(pixels.shape[0]).extra
        logits, _ = self._forward(pixels.to(self.dtype), x["question_ids"], x["question_mask"])
        return nn.functional.logsigmoid(logits.float().gather(-1, x["label"][:, None])[:, 0])

    @torch.no_grad()
    def attention(self, inputs: ExplainInputs) -> torch.Tensor:
        """(L, B, heads, Tq, h*w) float32 on CPU: the question-token rows of ViLT's joint self-attention over the
        image-patch columns, renormalised over those columns (text keys and the image CLS key are dropped)."""
        x = inputs.extra
        _, attn = self._forward(inputs.pixels, x["question_ids"], x["question_mask"], attentions=True)
        return renormalise(attn).cpu()
