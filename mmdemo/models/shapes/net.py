"""The shapes networks: one ViT image encoder, one BERT-style text stream, three ways to fuse them.

- early: image and word tokens in one transformer (single stream; text attends to image and text);
- cross: the text stream attends to the image tokens through cross-attention in every fusion layer;
- late:  the two encoders never meet until the output head (pooled image vector joins the text state).
The text stream answers questions (bidirectional, [CLS] -> answer head) and writes captions (causal, LM head).
The image tokens come from a conv stem trained with the model (`encoder="patch"`) or from a frozen ImageNet
EfficientNet-Lite0's 7×7 map (`encoder="efficientnet_lite0"`, blocks.BackboneEmbed).
Pretraining (`pretrain_losses`): masked language modelling and image–text matching on image–caption pairs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BackboneEmbed, Block, ConvPatchEmbed, causal_mask, grid_coords, padding_mask
from .tokenizer import CLS, MASK, PAD, SEP

AUX_SIZES = (7, 5, 3)   # per-patch classes: background + 6 colors, background + 4 shapes, background + 2 sizes
ENCODERS = {"patch": 8, "efficientnet_lite0": 32}   # image encoder -> pixels per image token (its stride)


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
    encoder: str = "patch"       # patch: conv stem trained with the model | efficientnet_lite0: frozen ImageNet backbone

    def __post_init__(self) -> None:   # from config.json they arrive as lists
        self.extra_words, self.answers = tuple(self.extra_words), tuple(self.answers)
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, not {self.encoder!r}")

    @property
    def answer_labels(self) -> tuple[str, ...]:
        from ...world.vocab import ANSWERS

        return self.answers or ANSWERS

    @property
    def grid(self) -> int:
        return self.image_size // ENCODERS[self.encoder]

    def to_dict(self) -> dict:
        return asdict(self)


class ShapesNet(nn.Module):
    def __init__(self, cfg: ShapesConfig):
        super().__init__()
        if cfg.fusion not in ("early", "cross", "late"):
            raise ValueError(f"fusion must be early, cross or late, not {cfg.fusion!r}")
        self.cfg = cfg
        D = cfg.dim
        self.patch_embed = (ConvPatchEmbed(D, cfg.image_size, coords=cfg.coords) if cfg.encoder == "patch"
                            else BackboneEmbed(D, cfg.image_size))
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
    def encode_image(self, pixels: torch.Tensor | None = None, *, features: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, P, D) image tokens, P = grid*grid. A frozen backbone's features
        (BackboneEmbed.features, computed once for a training pool) may stand in for the pixels."""
        x = self.patch_embed(pixels) if features is None else self.patch_embed.project(features)
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
    def joint_features(self, image: torch.Tensor, ids: torch.Tensor,
                       text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """What the answer head reads: the fused [CLS] state, (B, D); late fusion: [image, text, image*text], (B, 3D)."""
        cls = self.text_states(image, ids, causal=False, text_embeds=text_embeds)[:, 0]
        if self.cfg.fusion == "late":
            img = self.pooled_image(image)
            cls = torch.cat([img, cls, img * cls], dim=-1)
        return cls

    def answer_logits(self, image: torch.Tensor, q_ids: torch.Tensor,
                      text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P, D) image tokens, (B, T) question ids -> (B, n_answers)."""
        return self.answer_head(self.joint_features(image, q_ids, text_embeds))

    def word_logits(self, image: torch.Tensor, ids: torch.Tensor, *, causal: bool,
                    text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, vocab) logits over words at every position, through the tied word embeddings: causal, the next
        word (captioning); bidirectional, the word at a [MASK] (masked language modelling)."""
        h = self.text_states(image, ids, causal=causal, text_embeds=text_embeds)
        if self.cfg.fusion == "late":
            h = h + self.image_to_text(self.pooled_image(image))[:, None]
        return h @ self.word_embed.weight.t()

    def caption_logits(self, image: torch.Tensor, c_ids: torch.Tensor,
                       text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P, D), (B, T) caption prefix ids starting with [CLS] -> (B, T, vocab) next-token logits."""
        return self.word_logits(image, c_ids, causal=True, text_embeds=text_embeds)

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


def _image(net: ShapesNet, inputs: torch.Tensor) -> torch.Tensor:
    """Pixels (B, 3, S, S) or a frozen backbone's features (B, P, C) -> image tokens."""
    return net.encode_image(inputs) if inputs.ndim == 4 else net.encode_image(features=inputs)


def losses(net: ShapesNet, inputs, q_ids, answers, c_ids, aux_targets, *,
           parts: tuple[str, ...] = ("vqa", "lm", "aux")) -> dict[str, torch.Tensor]:
    """Fine-tuning losses on one batch (only those named in `parts`). inputs: pixels or backbone features;
    q_ids may hold k questions per image (k*B rows, image-major); aux_targets: (B, P, 3) long class per patch for
    color, shape, size."""
    image = _image(net, inputs)                                               # (B, P, D)
    out = {}
    if "vqa" in parts:
        k = q_ids.shape[0] // image.shape[0]
        out["vqa"] = F.cross_entropy(net.answer_logits(image.repeat_interleave(k, 0), q_ids), answers)
    if "lm" in parts:
        logits = net.caption_logits(image, c_ids[:, :-1])                     # predict token t+1 from <= t
        out["lm"] = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), c_ids[:, 1:].reshape(-1), ignore_index=0)
    if "aux" in parts:
        out["aux"] = sum(F.cross_entropy(l.reshape(-1, l.shape[-1]), aux_targets[..., k].reshape(-1))
                         for k, l in enumerate(net.aux_logits(image))) / 3
    return out


def mask_words(ids: torch.Tensor, prob: float, generator: torch.Generator,
               vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: `prob` of the words (never [CLS], [SEP], [PAD]) become targets; of those 80 % turn into
    [MASK], 10 % into a random word, 10 % stay. Returns (masked ids, targets with 0 where nothing is asked)."""
    words = (ids != PAD) & (ids != CLS) & (ids != SEP)
    chosen = words & (torch.rand(ids.shape, generator=generator) < prob)
    none = ~chosen.any(1) & words.any(1)                        # every caption asks at least one word
    if none.any():
        first = torch.multinomial(words[none].float(), 1, generator=generator)[:, 0]
        chosen[none.nonzero()[:, 0], first] = True
    roll = torch.rand(ids.shape, generator=generator)
    masked = ids.clone()
    masked[chosen & (roll < 0.8)] = MASK
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[swap] = torch.randint(MASK + 1, vocab_size, (int(swap.sum()),), generator=generator)
    return masked, torch.where(chosen, ids, torch.zeros_like(ids))


def pretrain_losses(net: ShapesNet, itm_head: nn.Module, inputs, c_ids, generator: torch.Generator, *,
                    mask_prob: float = 0.15) -> dict[str, torch.Tensor]:
    """Pretraining losses on image–caption pairs (B images, (B, T) caption ids):

    - mlm: masked words predicted from the rest of the caption and the image (bidirectional, tied embeddings);
    - itm: does this caption describe this image? Half the captions are swapped with another image's (a swap to
      an identical caption counts as a match), `itm_head` reads `joint_features`."""
    image = _image(net, inputs)
    masked, targets = mask_words(c_ids, mask_prob, generator, net.cfg.vocab_size)
    logits = net.word_logits(image, masked, causal=False)
    mlm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=0)
    paired, match = itm_pairs(c_ids, generator)
    itm = F.cross_entropy(itm_head(net.joint_features(image, paired)), match)
    return {"mlm": mlm, "itm": itm}


def itm_pairs(c_ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Captions for image–text matching: about half swapped with another image's. Returns ((B, T) captions,
    (B,) 1 where the caption describes its image, judged by the words, so a swap to an identical caption is a match)."""
    B = c_ids.shape[0]
    swap = torch.rand(B, generator=generator) < 0.5
    other = (torch.arange(B) + torch.randint(1, max(2, B), (B,), generator=generator)) % B
    paired = torch.where(swap[:, None], c_ids[other], c_ids)
    return paired, (paired == c_ids).all(1).long()
