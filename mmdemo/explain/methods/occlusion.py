"""`occlusion`: the score drop when one patch (or region of patches) is replaced by the baseline's: at the fusion
input (the encoded image's tokens, see `_fusion`) where the model has one, else in pixels (Captum Occlusion)."""
from __future__ import annotations

import torch
from captum.attr import Occlusion

from ...errors import InputError
from ...models.base import ExplainInputs
from .. import _fusion
from .._forward import ScoreFunction, image_baseline, max_rows, pool_to_grid
from .._method import MapMethod
from .._registry import register


@register
class OcclusionMap(MapMethod):
    name = "occlusion"
    summary = "score(image) - score(image with the patch, or region, replaced by the baseline)"

    def attribute(self, inputs: ExplainInputs, *, baseline: str | float = "median",
                  perturbations_per_eval: int | None = None, regions: tuple[int, int] | None = None,
                  at: str | None = None) -> torch.Tensor:
        """`regions`: occlude a coarser (rows, cols) grid of patch groups (None: each patch on grids up to
        8×8, an 8×8 grid of regions on larger ones); `at`: "fusion" (the encoded image's tokens; the default where
        the model has them) or "pixels"."""
        regions = regions_for(regions, self.grid)
        fusion = _fusion.fusion_of(self.model, at, "pixels")
        if fusion is not None:
            return self.to_grid(_fusion.occlusion(fusion, inputs, regions=regions, baseline=baseline, grid=self.grid))
        fn = ScoreFunction(self.model, inputs)
        H, W = inputs.pixels.shape[-2:]
        gh, gw = regions or self.grid
        window = (inputs.pixels.shape[1], -(-H // gh), -(-W // gw))
        per_eval = perturbations_per_eval or max(1, max_rows(fn) // fn.batch)
        attr = Occlusion(fn).attribute(inputs.pixels, sliding_window_shapes=window, strides=window,
                                       baselines=image_baseline(inputs.pixels, baseline, self.grid),
                                       perturbations_per_eval=per_eval)           # (B, 3, H, W)
        return pool_to_grid(attr, self.grid, reduce="mean")


MAX_REGIONS = 8              # default region grid side: one score per region, so 64 passes rather than 576 on BLIP


def regions_for(regions, grid: tuple[int, int]) -> tuple[int, int] | None:
    """The region grid to perturb: `regions` as given (see `_pair`), or by default each patch (None) on a grid up
    to MAX_REGIONS × MAX_REGIONS and a MAX_REGIONS × MAX_REGIONS grid of regions on a larger one."""
    if regions is not None:
        return _pair(regions)
    if max(grid) <= MAX_REGIONS:
        return None
    return (min(grid[0], MAX_REGIONS), min(grid[1], MAX_REGIONS))


def _pair(regions) -> tuple[int, int] | None:
    """None, n or (rows, cols) -> None or (rows, cols)."""
    if regions is None:
        return None
    if isinstance(regions, str):                       # "6x6" or "6" (the CLI's --option regions=6x6)
        try:
            regions = tuple(int(v) for v in regions.lower().replace("×", "x").split("x"))
        except ValueError:
            raise InputError(f"regions must be a positive whole number or ROWSxCOLS, not {regions!r}") from None
        regions = regions * 2 if len(regions) == 1 else regions
    r = (regions, regions) if isinstance(regions, int) else tuple(regions)
    if len(r) != 2 or not all(isinstance(v, int) and v > 0 for v in r):
        raise InputError(f"regions must be a positive whole number or (rows, cols), not {regions!r}")
    return (int(r[0]), int(r[1]))
