"""VisionEncoderDecoder (encoder–decoder fusion): a ViT encoder and a text decoder (GPT-2, BERT, …) that reads the
patch tokens through cross-attention; `assemble_vit_bert` builds the ViT + BERT variant from two pretrained parts."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from ._base import Captioner
from ._probe import HubProbe
from ._catalogue import ENCODER_DECODER
from ._weights import hub_kwargs


class EncoderDecoderProbe(HubProbe):
    def modules(self):
        return [self.model.model]

    def layout(self, outs, inputs):
        (out,) = outs
        steps = self.image_side(out.encoder_attentions) + self.decoder(out.decoder_attentions, out.cross_attentions)
        return self.image_record(steps, out.encoder_attentions[0].shape[-1], out.decoder_attentions[0].shape[-1])


class EncoderDecoderCaptioner(Captioner):
    """VisionEncoderDecoderModel (vit-gpt2, vit-bert). Captions start at config.decoder_start_token_id and end at
    the eos token. The text→image attention is the decoder's cross-attention over the encoder's patch columns,
    renormalised over them (the encoder's CLS column is dropped)."""

    family = ENCODER_DECODER
    model_class = "VisionEncoderDecoderModel"
    probe_class = EncoderDecoderProbe
    vision_path = "encoder.layernorm"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        tok = self.tokenizer
        start = self._first("decoder_start_token_id", "bos_token_id")
        end = self._first("eos_token_id")
        self.start_id = int(start if start is not None else tok.cls_token_id)
        self.end_id = int(end if end is not None else tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id)

    def _first(self, *keys: str) -> int | None:
        """A special-token id from the generation config, the model config or the decoder config, in that order."""
        for key in keys:
            for cfg in (getattr(self.model, "generation_config", None), self.model.config, self.model.config.decoder):
                value = getattr(cfg, key, None)
                value = value[0] if isinstance(value, (list, tuple)) and value else value
                if isinstance(value, int):
                    return value
        return None

    @property
    def pad_id(self) -> int:
        pad = self._first("pad_token_id")
        return super().pad_id if pad is None else pad

    def _about(self) -> str:
        enc, dec = self.model.config.encoder.model_type, self.model.config.decoder.model_type
        return f"vision encoder–decoder: a {enc.upper()} encoder read by a {dec.upper()} decoder through cross-attention"

    def _vision_config(self) -> Any:
        return self.model.config.encoder

    def _patch_layer(self) -> nn.Module:
        return self.model.encoder.get_input_embeddings()

    @property
    def text_embedding(self) -> nn.Module:
        return self.model.decoder.get_input_embeddings()

    def _generate(self, pixels: torch.Tensor, prompt: torch.Tensor, **kw: Any) -> Any:
        encoded = BaseModelOutput(last_hidden_state=self._image_tokens(pixels))     # cached per image
        return self.model.generate(encoder_outputs=encoded, decoder_input_ids=prompt,
                                   decoder_attention_mask=torch.ones_like(prompt), **kw)

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(pixel_values=pixels).last_hidden_state            # (B, 1 + h*w, D), CLS first

    def _projections(self) -> list[nn.Module]:
        """The encoder-to-decoder projection if there is one, else every cross-attention's key and value maps
        (GPT-2: c_attn, keys and values together; BERT: key, value): the only readers of the image tokens."""
        if getattr(self.model, "enc_to_dec_proj", None) is not None:
            return [self.model.enc_to_dec_proj]
        return [m for name, m in self.model.decoder.named_modules()
                if ".crossattention." in f".{name}" and name.rsplit(".", 1)[-1] in ("key", "value", "c_attn")]

    def _forward(self, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                 attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """From pixels in one call of the whole model (the attention probe reads its encoder attentions too)."""
        out = self.model(pixel_values=pixels, decoder_input_ids=ids, decoder_attention_mask=mask, use_cache=False,
                         output_attentions=attentions, return_dict=True)
        return self._logits_and_cross(out, attentions)

    def _decode(self, tokens: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.model(encoder_outputs=(tokens,), decoder_input_ids=ids, decoder_attention_mask=mask,
                         use_cache=False, output_attentions=attentions, return_dict=True)
        return self._logits_and_cross(out, attentions)

    def _logits_and_cross(self, out: Any, attentions: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not attentions:
            return out.logits, None
        P = self.grid[0] * self.grid[1]
        return out.logits, torch.stack(out.cross_attentions)[..., -P:]   # (L, B, heads, S, h*w)


def assemble_vit_bert(encoder: str | Path, decoder: str | Path, folder: str | Path) -> Path:
    """Join a pretrained ViT (folder or hub id, with its image processor) and a pretrained BERT (with its tokenizer)
    into a VisionEncoderDecoderModel saved to `folder`, ready for MMDEMO_VIT_BERT_PATH.

    The decoder gains cross-attention layers (randomly initialised): the model captions nothing useful until it is
    fine-tuned on image–caption pairs. Captions start at [CLS] and end at [SEP]; [PAD] pads.
    """
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    enc_kw, dec_kw = hub_kwargs(str(encoder)), hub_kwargs(str(decoder))
    model = VisionEncoderDecoderModel.from_encoder_decoder_pretrained(
        str(encoder), str(decoder), **{f"encoder_{k}": v for k, v in enc_kw.items()},
        **{f"decoder_{k}": v for k, v in dec_kw.items()})
    tokenizer = AutoTokenizer.from_pretrained(str(decoder), **dec_kw)
    image_processor = AutoImageProcessor.from_pretrained(str(encoder), **enc_kw)
    model.config.decoder_start_token_id = tokenizer.cls_token_id
    model.config.eos_token_id = tokenizer.sep_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.decoder_start_token_id = tokenizer.cls_token_id
    model.generation_config.eos_token_id = tokenizer.sep_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    return folder
