"""The shapes networks: one conv-stem ViT image encoder, one BERT-style text stream, three ways to fuse them.

- early: image and word tokens in one transformer (single stream; text attends to image and text);
- cross: the text stream attends to the image tokens through cross-attention in every fusion layer;
- late:  the two encoders never meet until the output head (pooled image vector joins the text state).
The text stream answers questions (bidirectional, [CLS] -> answer head) and writes captions (causal, LM head).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Block, ConvPatchEmbed, causal_mask, grid_coords, padding_mask

AUX_SIZES = (7, 5, 3)   # per-patch classes: background + 6 colors, background + 4 shapes, background + 2 sizes


@dataclass
class ShapesConfig:
    fusion: str = "cross"        # early | cross | late
    image_size: int = 64         # every image is resized to this square
    dim: int = 128               # width of every token
    heads: int = 4
    image_layers: int = 2        # self-attention over image tokens
    text_layers: int = 1         # self-attention over words before fusion
    fusion_layers: int = 3       # layers where the two meet (late: more text layers)
    max_text: int = 32           # longest question or caption, in tokens
    vocab_size: int = 64
    n_answers: int = 28
    coords: bool = True          # x, y coordinate channels into the stem: absolute position for "where", "above"
    readout: bool = False        # fusion attention reads out where it looked (see blocks.Attention): relations
    extra_words: tuple[str, ...] = ()   # words beyond the world's vocabulary (tokenizer.vocabulary)
    answers: tuple[str, ...] = ()       # the answer head's labels; empty: the world's ANSWERS

    def __post_init__(self) -> None:   # from config.json they arrive as lists
        self.extra_words, self.answers = tuple(self.extra_words), tuple(self.answers)

    @property
    def answer_labels(self) -> tuple[str, ...]:
        from ...world.vocab import ANSWERS

        return self.answers or ANSWERS

    @property
    def grid(self) -> int:
        return self.image_size // 8

    def to_dict(self) -> dict:
        return asdict(self)


class ShapesNet(nn.Module):
    def __init__(self, cfg: ShapesConfig):
        super().__init__()
        if cfg.fusion not in ("early", "cross", "late"):
            raise ValueError(f"fusion must be early, cross or late, not {cfg.fusion!r}")
        self.cfg = cfg
        D = cfg.dim
        self.patch_embed = ConvPatchEmbed(D, cfg.image_size, coords=cfg.coords)
        self.image_blocks = nn.ModuleList(Block(D, cfg.heads) for _ in range(cfg.image_layers))
        self.image_norm = nn.LayerNorm(D)
        self.word_embed = nn.Embedding(cfg.vocab_size, D)
        self.text_pos = nn.Parameter(torch.zeros(1, cfg.max_text, D))
        self.task_embed = nn.Embedding(2, D)                      # 0: question, 1: caption
        self.modality_embed = nn.Parameter(torch.zeros(2, D))     # early fusion: image, text
        nn.init.trunc_normal_(self.text_pos, std=0.02)
        self.text_blocks = nn.ModuleList(Block(D, cfg.heads) for _ in range(cfg.text_layers))
        cross = cfg.fusion == "cross"
        readout = cfg.readout and cfg.fusion != "late"
        self.fusion_blocks = nn.ModuleList(Block(D, cfg.heads, cross=cross, readout=readout)
                                           for _ in range(cfg.fusion_layers))
        self.text_norm = nn.LayerNorm(D)
        if cfg.fusion == "late":
            self.pool_query = nn.Parameter(torch.zeros(1, 1, D))
            self.pool = nn.MultiheadAttention(D, cfg.heads, batch_first=True)
            self.image_to_text = nn.Linear(D, D)
            head_in = 3 * D
        else:
            head_in = D
        self.answer_head = nn.Sequential(nn.Linear(head_in, 2 * D), nn.GELU(), nn.Linear(2 * D, cfg.n_answers))
        self.aux_head = nn.Linear(D, sum(AUX_SIZES))
        self.apply(_init)
        for m in self.modules():   # the readout starts silent: a model trained without it behaves the same
            if getattr(m, "coord_out", None) is not None:
                nn.init.zeros_(m.coord_out.weight)
                nn.init.zeros_(m.coord_out.bias)
        self.register_buffer("patch_coords", grid_coords(cfg.grid), persistent=False)

    # --- encoders -------------------------------------------------------------------------
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, P, D) image tokens, P = grid*grid."""
        x = self.patch_embed(pixels)
        for blk in self.image_blocks:
            x = blk(x)
        return self.image_norm(x)

    def embed_text(self, ids: torch.Tensor, task: int) -> torch.Tensor:
        """(B, T) ids -> (B, T, D)."""
        T = ids.shape[1]
        return self.word_embed(ids) + self.text_pos[:, :T] + self.task_embed.weight[task]

    def _text_mask(self, ids: torch.Tensor, causal: bool) -> torch.Tensor:
        mask = padding_mask(ids)                                              # (B, 1, 1, T)
        return mask & causal_mask(ids.shape[1], ids.device) if causal else mask

    def text_states(self, image: torch.Tensor, ids: torch.Tensor, *, causal: bool,
                    text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Fused states of the text positions, (B, T, D). `text_embeds` replaces embed_text(ids) (attributions)."""
        x = self.embed_text(ids, int(causal)) if text_embeds is None else text_embeds
        mask = self._text_mask(ids, causal)
        for blk in self.text_blocks:
            x = blk(x, mask)
        if self.cfg.fusion == "cross":
            for blk in self.fusion_blocks:
                x = blk(x, mask, context=image, key_coords=self.patch_coords)
        elif self.cfg.fusion == "early":
            B, P, T = image.shape[0], image.shape[1], ids.shape[1]
            seq = torch.cat([image + self.modality_embed[0], x + self.modality_embed[1]], dim=1)  # (B, P+T, D)
            joint = torch.ones(B, 1, P + T, P + T, dtype=torch.bool, device=ids.device)
            joint[:, :, :P, P:] = False                                     # image tokens see only the image
            joint[:, :, P:, P:] = mask.expand(B, 1, T, T)                   # words: padding (and causal)
            coords = torch.cat([self.patch_coords, self.patch_coords.new_zeros(T, 2)])   # words have no position
            for blk in self.fusion_blocks:
                seq = blk(seq, joint, key_coords=coords)
            x = seq[:, P:]
        else:  # late: words never see the image
            for blk in self.fusion_blocks:
                x = blk(x, mask)
        return self.text_norm(x)

    def pooled_image(self, image: torch.Tensor) -> torch.Tensor:
        """Late fusion: one vector per image from a learned query, (B, D)."""
        q = self.pool_query.expand(image.shape[0], -1, -1)
        return self.pool(q, image, image, need_weights=False)[0][:, 0]

    # --- heads -----------------------------------------------------------------------------
    def answer_logits(self, image: torch.Tensor, q_ids: torch.Tensor,
                      text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P, D) image tokens, (B, T) question ids -> (B, n_answers)."""
        cls = self.text_states(image, q_ids, causal=False, text_embeds=text_embeds)[:, 0]   # (B, D)
        if self.cfg.fusion == "late":
            img = self.pooled_image(image)
            cls = torch.cat([img, cls, img * cls], dim=-1)                    # (B, 3D)
        return self.answer_head(cls)

    def caption_logits(self, image: torch.Tensor, c_ids: torch.Tensor,
                       text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P, D), (B, T) caption prefix ids starting with [CLS] -> (B, T, vocab) next-token logits."""
        h = self.text_states(image, c_ids, causal=True, text_embeds=text_embeds)
        if self.cfg.fusion == "late":
            h = h + self.image_to_text(self.pooled_image(image))[:, None]
        return h @ self.word_embed.weight.t()

    def aux_logits(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Per-patch color, shape and size logits, [(B, P, 7), (B, P, 5), (B, P, 3)]; a training signal."""
        return list(self.aux_head(image).split(AUX_SIZES, dim=-1))


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.trunc_normal_(m.weight, std=0.02)


def losses(net: ShapesNet, pixels, q_ids, answers, c_ids, aux_targets) -> dict[str, torch.Tensor]:
    """Training losses on one batch. q_ids may hold k questions per image (k*B rows, image-major);
    aux_targets: (B, P, 3) long class per patch for color, shape, size."""
    image = net.encode_image(pixels)                                          # (B, P, D)
    k = q_ids.shape[0] // image.shape[0]
    vqa = F.cross_entropy(net.answer_logits(image.repeat_interleave(k, 0), q_ids), answers)
    logits = net.caption_logits(image, c_ids[:, :-1])                     # predict token t+1 from <= t
    lm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), c_ids[:, 1:].reshape(-1), ignore_index=0)
    aux = sum(F.cross_entropy(l.reshape(-1, l.shape[-1]), aux_targets[..., k].reshape(-1))
              for k, l in enumerate(net.aux_logits(image)))
    return {"vqa": vqa, "lm": lm, "aux": aux / 3}
