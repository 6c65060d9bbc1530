"""BLIP (cross-attention fusion): a ViT image encoder read by BERT-style text layers through cross-attention.

Captioning: the text decoder cross-attends to the image tokens. VQA: a question encoder cross-attends to the image,
and an answer decoder cross-attends to the encoded question (not to the image). The adapters call the submodules
directly rather than `BlipFor….generate`: that fixes the start token, lets VQA decoding honour the question's padding
(transformers' BLIP VQA generate attends to pad tokens of a batch), and returns the cross-attention maps.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from PIL import Image
from torch import nn

from ...errors import InputError
from ..base import Answer, ExplainInputs, Target
from ..fusion import FusionInput
from ._base import Captioner, HubModel, renormalise, step_logprobs
from ._probe import HubProbe
from ._catalogue import BLIP_CAPTION, BLIP_VQA


def _image_tokens(model: nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1 + h*w, D) vision tokens (CLS first) and their all-ones mask (B, 1 + h*w)."""
    image = model.vision_model(pixel_values=pixels).last_hidden_state
    return image, torch.ones(image.shape[:2], dtype=torch.long, device=image.device)


def _patch_columns(cross: Sequence[torch.Tensor], patches: int) -> torch.Tensor:
    """Per-layer cross-attention (B, heads, S, 1 + h*w) -> (L, B, heads, S, h*w), CLS column dropped."""
    return torch.stack(cross)[..., -patches:]


class BlipCaptionProbe(HubProbe):
    """The ViT's self-attention, then per decoder layer the text self-attention and the cross-attention."""

    def modules(self):
        return [self.model.model.vision_model, self.model.model.text_decoder]

    def layout(self, outs, inputs):
        vision, text = outs
        steps = self.image_side(vision.attentions) + self.decoder(text.attentions, text.cross_attentions)
        return self.image_record(steps, vision.attentions[0].shape[-1], text.attentions[0].shape[-1])


class BlipAnswerProbe(BlipCaptionProbe):
    """The question encoder's self- and cross-attention; the answer decoder reads only the fused question."""

    def modules(self):
        return [self.model.model.vision_model, self.model.model.text_encoder]


class BlipCaptioner(Captioner):
    """BlipForConditionalGeneration. Captions start at the text config's bos ([DEC]) and end at its sep ([SEP])."""

    family = BLIP_CAPTION
    model_class = "BlipForConditionalGeneration"
    about = "BLIP captioner: a BERT decoder writes a caption while cross-attending to ViT patch tokens"
    probe_class = BlipCaptionProbe
    vision_path = "vision_model.post_layernorm"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        text = self.model.config.text_config
        self.start_id, self.end_id = int(text.bos_token_id), int(text.sep_token_id)

    @property
    def pad_id(self) -> int:
        return int(self.model.config.text_config.pad_token_id)

    def _vision_config(self) -> Any:
        return self.model.config.vision_config

    def _patch_layer(self) -> nn.Module:
        return self.model.vision_model.embeddings.patch_embedding

    @property
    def text_embedding(self) -> nn.Module:
        return self.model.text_decoder.get_input_embeddings()

    def _generate(self, pixels: torch.Tensor, prompt: torch.Tensor, **kw: Any) -> Any:
        image = self._image_tokens(pixels)                               # (B, 1 + h*w, D), cached per image
        mask = torch.ones(image.shape[:2], dtype=torch.long, device=image.device)
        return self.model.text_decoder.generate(input_ids=prompt, encoder_hidden_states=image,
                                                encoder_attention_mask=mask, **kw)

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return _image_tokens(self.model, pixels)[0]                      # (B, 1 + h*w, D), CLS first

    def _projections(self) -> list[nn.Module]:
        """Each decoder layer's cross-attention key and value: the only readers of the image tokens."""
        return [m for layer in self.model.text_decoder.bert.encoder.layer
                for m in (layer.crossattention.self.key, layer.crossattention.self.value)]

    def _decode(self, image: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        image_mask = torch.ones(image.shape[:2], dtype=torch.long, device=image.device)
        out = self.model.text_decoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=image,
                                      encoder_attention_mask=image_mask, use_cache=False,
                                      **({"output_attentions": True} if attentions else {}))
        attn = _patch_columns(out.cross_attentions, self.grid[0] * self.grid[1]) if attentions else None
        return out.logits, attn                                          # (B, S, V), (L, B, heads, S, h*w)


class BlipAnswerer(HubModel):
    """BlipForQuestionAnswering: a generated answer (at least one token); prob = exp(log-prob of its tokens and the
    end token; an answer cut at `max_answer_tokens` has no end token to count).

    top_k candidates come from beam search (num_beams = top_k) and are ranked by that exact probability.
    The text→image attention is the question encoder's cross-attention (question tokens → patches): the answer
    decoder only sees the image through the encoded question.
    """

    family = BLIP_VQA
    model_class = "BlipForQuestionAnswering"
    about = "BLIP VQA: question tokens cross-attend to ViT patch tokens, then a decoder writes a short answer"
    probe_class = BlipAnswerProbe
    vision_path = "vision_model.post_layernorm"
    max_answer_tokens = 10

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        text = self.model.config.text_config
        self.start_id, self.end_id, self.pad_id = int(text.bos_token_id), int(text.sep_token_id), int(text.pad_token_id)
        self.max_question = int(min(text.max_position_embeddings, 64))

    def _vision_config(self) -> Any:
        return self.model.config.vision_config

    def _patch_layer(self) -> nn.Module:
        return self.model.vision_model.embeddings.patch_embedding

    @property
    def text_embedding(self) -> nn.Module:
        """The question encoder's word embeddings (the text the image is fused with)."""
        return self.model.text_encoder.get_input_embeddings()

    def _encode(self, pixels: torch.Tensor, q_ids: torch.Tensor, q_mask: torch.Tensor,
                attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, Tq, D) question tokens fused with the image, and optionally (L, B, heads, Tq, h*w) cross-attention."""
        return self._fuse(_image_tokens(self.model, pixels)[0], q_ids, q_mask, attentions)

    def _fuse(self, image: torch.Tensor, q_ids: torch.Tensor, q_mask: torch.Tensor,
              attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`_encode` from the image tokens (B, 1 + h*w, D)."""
        image_mask = torch.ones(image.shape[:2], dtype=torch.long, device=image.device)
        out = self.model.text_encoder(input_ids=q_ids, attention_mask=q_mask, encoder_hidden_states=image,
                                      encoder_attention_mask=image_mask,
                                      **({"output_attentions": True} if attentions else {}))
        attn = _patch_columns(out.cross_attentions, self.grid[0] * self.grid[1]) if attentions else None
        return out.last_hidden_state, attn

    def fusion_input(self) -> "AnswerFusion":
        if "_fusion" not in self.__dict__:
            self._fusion = AnswerFusion(self)
        return self._fusion

    @torch.inference_mode()
    def answer(self, images: Sequence[Image.Image], questions: Sequence[str], top_k: int = 5) -> list[Answer]:
        if len(images) != len(questions):
            raise InputError(f"{len(images)} images but {len(questions)} questions")
        k = max(1, int(top_k))
        answers: list[Answer] = []
        for lo in range(0, len(images), self.max_batch):
            chunk, qs = images[lo:lo + self.max_batch], questions[lo:lo + self.max_batch]
            q = self._questions(qs, self.max_question)
            image = self.fusion_input().encoded(self._pixels(chunk))             # cached per image
            fused, _ = self._fuse(image, q["input_ids"], q["attention_mask"])
            prompt = torch.full((len(chunk), 1), self.start_id, dtype=torch.long, device=self.device)
            out = self.model.text_decoder.generate(
                input_ids=prompt, encoder_hidden_states=fused, encoder_attention_mask=q["attention_mask"],
                eos_token_id=self.end_id, pad_token_id=self.pad_id, suppress_tokens=self._suppressed(),
                min_new_tokens=1, max_new_tokens=self.max_answer_tokens, num_beams=k, num_return_sequences=k, do_sample=False,
                return_dict_in_generate=True, output_logits=True)
            new = out.sequences[:, 1:]                                   # (B*k, N)
            lp, _, _ = step_logprobs(out, new)                           # (B*k, N)
            for i in range(len(chunk)):
                best: dict[str, float] = {}
                for ids, lps in zip(new[i * k:(i + 1) * k].tolist(), lp[i * k:(i + 1) * k].tolist()):
                    n = ids.index(self.end_id) + 1 if self.end_id in ids else len(ids)  # the end token counts
                    text = self.tokenizer.decode(ids[:n], skip_special_tokens=True).strip()
                    best[text] = max(best.get(text, 0.0), math.exp(sum(lps[:n])))
                ranked = sorted(best.items(), key=lambda kv: -kv[1])
                answers.append(Answer(ranked[0][0], ranked[0][1], ranked[:k]))
        return answers

    def prepare(self, images: Sequence[Image.Image], targets: Sequence[Target]) -> ExplainInputs:
        """Question ids, and answer ids [start, a1 … an, end]; text_tokens are the question's tokens (with [CLS]/[SEP])."""
        if len(images) != len(targets):
            raise InputError(f"{len(images)} images but {len(targets)} targets")
        for t in targets:
            if t.kind != "answer" or not t.question:
                raise InputError(f"{self.info.name!r} explains answers to questions (a target with kind='answer' and a question)")
        q = self._questions([t.question or "" for t in targets], self.max_question)
        rows = [self.tokenizer(t.text.strip(), add_special_tokens=False)["input_ids"] for t in targets]
        if any(not r for r in rows):
            raise InputError("the answer to explain is empty")
        B, S = len(rows), max(len(r) for r in rows) + 2
        ids = torch.full((B, S), self.pad_id, dtype=torch.long)          # (B, S)
        mask = torch.zeros(B, S, dtype=torch.long)
        weight = torch.zeros(B, S - 1)                                   # (B, S-1): answer tokens and the end token
        for i, r in enumerate(rows):
            ids[i, :len(r) + 2] = torch.tensor([self.start_id, *r, self.end_id])
            mask[i, :len(r) + 2] = 1
            weight[i, :len(r) + 1] = 1
        qmask = q["attention_mask"].cpu()
        tokens = [self._display(row[m.bool()].tolist()) for row, m in zip(q["input_ids"].cpu(), qmask)]
        Tq = qmask.shape[1]
        extra = {"question_ids": q["input_ids"], "question_mask": q["attention_mask"], "answer_ids": ids,
                 "answer_mask": mask, "weight": weight, "text_positions": torch.arange(Tq).expand(B, Tq).clone()}
        return ExplainInputs(self._explain_pixels(images), list(targets), tokens, extra).to(self.device)

    def score(self, inputs: ExplainInputs, *, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) log-probability of each answer (its tokens and the end token), differentiable w.r.t. pixels."""
        pixels = inputs.pixels if pixels is None else pixels
        return self._score_image(inputs, _image_tokens(self.model, pixels.to(self.dtype))[0])

    def _score_image(self, inputs: ExplainInputs, image: torch.Tensor) -> torch.Tensor:
        """`score` from the image tokens (n, 1 + h*w, D)."""
        x = inputs.tiled(image.shape[0]).extra
        fused, _ = self._fuse(image, x["question_ids"], x["question_mask"])
        out = self.model.text_decoder(input_ids=x["answer_ids"], attention_mask=x["answer_mask"],
                                      encoder_hidden_states=fused, encoder_attention_mask=x["question_mask"],
                                      use_cache=False)
        ids = x["answer_ids"]
        lp = out.logits[:, :-1].float().log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]  # (B, S-1)
        return (lp * x["weight"]).sum(-1)

    @torch.no_grad()
    def attention(self, inputs: ExplainInputs) -> torch.Tensor:
        """(L, B, heads, Tq, h*w) float32 on CPU: question tokens → patches in the question encoder's
        cross-attention, renormalised over the patch columns (the image CLS column is dropped)."""
        x = inputs.extra
        image = self.fusion_input().encoded(inputs.pixels)                       # cached per image
        _, attn = self._fuse(image, x["question_ids"], x["question_mask"], attentions=True)
        return renormalise(attn).cpu()


class AnswerFusion(FusionInput):
    """BLIP VQA's fusion input: the ViT tokens the question encoder cross-attends to."""

    def __init__(self, model: BlipAnswerer):
        super().__init__()
        self.model = model
        self.n_patches = model.grid[0] * model.grid[1]

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return _image_tokens(self.model.model, pixels.to(self.model.dtype))[0]

    def projections(self) -> list[nn.Module]:
        return [m for layer in self.model.model.text_encoder.encoder.layer
                for m in (layer.crossattention.self.key, layer.crossattention.self.value)]

    def score_tokens(self, inputs: ExplainInputs, tokens: torch.Tensor, *, trim: bool = False) -> torch.Tensor:
        return self.model._score_image(inputs, tokens.to(self.model.dtype))
