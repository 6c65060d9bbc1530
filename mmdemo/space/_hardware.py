"""What each Space hardware needs: Python version, how torch is installed, extra packages."""
from __future__ import annotations

from dataclasses import dataclass

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class Hardware:
    name: str                           # the Spaces hardware flavour (`suggested_hardware`)
    python_version: str                 # `python_version` in the front matter
    torch: tuple[str, ...]              # requirement lines for torch and torchvision
    index_lines: tuple[str, ...] = ()   # pip options first in requirements.txt (e.g. the CPU wheel index)
    extra: tuple[str, ...] = ()         # packages only this hardware needs
    gpu: bool = False
    note: str = ""                      # one line for the Space's README


HARDWARE: dict[str, Hardware] = {
    # Free CPU: CPU-only wheels (about 200 MB) instead of the default CUDA build (several GB).
    "cpu-basic": Hardware(
        "cpu-basic", "3.11", ("torch>=2.4", "torchvision>=0.19"), index_lines=(f"--extra-index-url {CPU_INDEX}",),
        note="free CPU hardware: the embedded models answer in well under a second; hub models are slow here"),
    # A dedicated T4: the default PyPI wheels are CUDA builds.
    "t4-small": Hardware(
        "t4-small", "3.11", ("torch>=2.4", "torchvision>=0.19"), gpu=True,
        note="one NVIDIA T4: hub models run on CUDA (bf16 where the model supports it)"),
    # ZeroGPU: Python 3.10.13 only; torch from the versions ZeroGPU lists (2.1.0 … 2.8.0, no 2.3.x),
    # torchvision the release paired with each; `spaces` provides the @spaces.GPU decorator.
    "zero-gpu": Hardware(
        "zero-gpu", "3.10.13", ("torch>=2.4,<=2.8.0", "torchvision>=0.19,<=0.23.0"), extra=("spaces",), gpu=True,
        note="ZeroGPU: a GPU slice is attached for each `spaces.GPU` call, the rest runs on CPU"),
}
