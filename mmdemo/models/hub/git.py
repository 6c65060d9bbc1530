"""GIT (early fusion): CLIP image tokens prefixed to a BERT-style text decoder in one transformer; image tokens attend
to each other, text tokens attend to all image tokens and causally to earlier text."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from ._base import Captioner
from ._probe import HubProbe, Step
from ._catalogue import GIT_CAPTION


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


class GitCaptioner(Captioner):
    """GitForCausalLM. Captions start at [CLS] (config bos) and end at [SEP] (config eos).

    Captions see the CLIP preprocessing (shorter side to the crop size, then the centre crop); explanations see the
    photo stretched to a square first, so the map covers the whole photo the user sees (same pixels for a square one).

    The text→image attention is the text rows of the decoder's self-attention over the image-patch columns,
    renormalised over them (each row also covers the image CLS token and the earlier text tokens).
    """

    family = GIT_CAPTION
    model_class = "GitForCausalLM"
    probe_class = GitProbe
    vision_path = "git.image_encoder.vision_model.post_layernorm"
    square_first = True                 # CLIP preprocessing crops the centre: explanations keep the whole photo
    about = "GIT captioner: CLIP image tokens are the prefix a text decoder continues with a caption"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        cfg, tok = self.model.config, self.tokenizer
        eos = cfg.eos_token_id[0] if isinstance(cfg.eos_token_id, (list, tuple)) else cfg.eos_token_id
        self.start_id = int(tok.cls_token_id if tok.cls_token_id is not None else cfg.bos_token_id)
        self.end_id = int(eos if eos is not None else tok.sep_token_id)

    def _vision_config(self) -> Any:
        return self.model.config.vision_config

    def _patch_layer(self) -> nn.Module:
        return self.model.git.image_encoder.vision_model.embeddings.patch_embedding

    @property
    def text_embedding(self) -> nn.Module:
        return self.model.git.embeddings.word_embeddings

    def _generate(self, pixels: torch.Tensor, prompt: torch.Tensor, **kw: Any) -> Any:
        return self.model.generate(pixel_values=pixels, input_ids=prompt, attention_mask=torch.ones_like(prompt), **kw)

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 1 + h*w, D) CLIP's tokens, before the visual projection (a layer norm: not linear) joins them to
        the text: GIT's fusion input has no projections to mix, the tokens themselves are mixed."""
        return self.model.git.image_encoder(pixel_values=pixels).last_hidden_state

    def _decode(self, tokens: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        encoder = self.model.git.image_encoder
        encoder.forward = lambda *a, **k: SimpleNamespace(last_hidden_state=tokens)   # the tokens given
        try:
            placeholder = tokens.new_zeros(tokens.shape[0], 1, 1, 1)                    # read for its rank only
            return self._forward(placeholder, ids, mask, attentions)
        finally:
            del encoder.forward

    def _forward(self, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                 attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """From pixels in one call of GitModel (the attention probe reads CLIP's attentions too)."""
        out = self.model.git(input_ids=ids, attention_mask=mask, pixel_values=pixels, use_cache=False,
                             **({"output_attentions": True} if attentions else {}))
        S = ids.shape[1]
        I = out.last_hidden_state.shape[1] - S                           # image tokens: CLS + h*w patches
        logits = self.model.output(out.last_hidden_state[:, I:])         # (B, S, V)
        if not attentions:
            return logits, None
        P = self.grid[0] * self.grid[1]
        return logits, torch.stack(out.attentions)[:, :, :, I:, I - P:I]  # (L, B, heads, S, h*w)
