"""Where a model runs: one rule for every family."""
from __future__ import annotations

import torch


def choose_device(device: str | torch.device | None = None, *, gpu: bool = True) -> torch.device:
    """The device argument, else MMDEMO_DEVICE, else CUDA when present and `gpu`, else CPU.

    Embedded models pass gpu=False: a few MB of weights run faster on the CPU than a GPU round trip takes."""
    from ..config import settings

    device = device or settings().device
    if device:
        return torch.device(device)
    return torch.device("cuda" if gpu and torch.cuda.is_available() else "cpu")


def choose_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a GPU that has it (fp16 on older ones), fp32 on CPU."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
