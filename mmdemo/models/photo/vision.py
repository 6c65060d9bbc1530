"""The image side: timm's `tf_efficientnet_lite0` with the package's ImageNet state dict, its preprocessing, and
Grad-CAM in closed form for the global-average-pool + linear head."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ...errors import InputError

INPUT = 224                             # every image is resized whole (no crop) to INPUT × INPUT
GRID = 7                                # the last conv stage's map at INPUT: 224 / 32
MEAN, STD = 0.5, 0.5                    # the TF-Lite checkpoints' normalisation: pixels in [-1, 1]


class FeatureTap(nn.Identity):
    """The last conv stage's map as image tokens, (B, h*w, C) in raster order: the model's `image_embedding`.

    The classifier's forward passes its features through this module, so Captum's layer methods (Grad-CAM, layer
    IG) and hooks see them without touching timm's modules."""


def to_pixels(images: Sequence[Image.Image], size: int = INPUT) -> torch.Tensor:
    """(B, 3, size, size) normalised pixels; any size and mode in, resized whole (bicubic)."""
    if not len(images):
        raise InputError("no images given")
    arrays = []
    for im in images:
        if not isinstance(im, Image.Image):
            raise InputError(f"expected a PIL image, got {type(im).__name__}")
        arrays.append(np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).div_(255)         # (B, 3, S, S) in [0, 1]
    return (x - MEAN) / STD


def thumbnails(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """(B, size, size, 3) uint8: the images resized whole, as the model sees them (for colours)."""
    return np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
                     for im in images])


def gradcam(features: torch.Tensor, probs: torch.Tensor, weights: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of log Σ_c w_c p_c on the last conv map, in closed form; differentiable.

    features (B, C, h, w) feed a global average pool and a linear layer fc (K, C); probs (B, K) softmax; weights
    (B, K) in [0, 1]. With P = Σ w p, d log P / d logit_j = w_j p_j / P − p_j, so the channel weights are
    α = fc.T (w p / P − p) / (h w) and the map is Σ_k α_k A_k (signed; Grad-CAM takes its positive part)."""
    B, C, h, w = features.shape
    mass = (weights * probs).sum(-1, keepdim=True).clamp_min(1e-12)             # (B, 1)
    g = weights * probs / mass - probs                                          # (B, K) d log P / d logits
    alpha = g @ fc / (h * w)                                                    # (B, C)
    return torch.einsum("bc,bchw->bhw", alpha, features)                        # (B, h, w)


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(B, h, w) -> (B, size, size), bilinear."""
    return F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
