"""Methods at the fusion input (see `mmdemo.models.fusion`): the image encoded once, only the text side run per step.

Integrated Gradients follows the straight path between the encoded baseline image b and the encoded image x. The
text side reads the tokens only through linear, token-wise projections P (cross-attention keys and values), so on
the path P(b + α(x − b)) = P(b) + α(P(x) − P(b)): both ends are projected once, every step mixes them, and the
gradients the steps leave on the projections are summed (with the rule's weights) and pulled back through P once.
Occlusion and Shapley values of regions mix the two ends token by token (a token's projection is its own).
"""
from __future__ import annotations

import torch
from captum.attr import ShapleyValueSampling
from captum.attr._utils.approximation_methods import approximation_parameters

from ..errors import InputError
from ..models.base import ExplainInputs, VLModel
from ..models.fusion import FusionInput
from ._forward import image_baseline

ROW_BYTES = 512 * 2**20                 # mixed projections held per pass (with their gradients, twice that)


def fusion_of(model: VLModel, at: str | None, other: str) -> FusionInput | None:
    """The model's fusion input if `at` asks for it (None: where the model has one); None for `other`."""
    if at not in (None, "fusion", other):
        raise InputError(f"at must be 'fusion' or {other!r}, not {at!r}")
    fusion = model.fusion_input() if at != other else None
    if at == "fusion" and fusion is None:
        raise InputError(f"{model.info.name!r} has no fusion input (its image and text share one stream); "
                         f"use at={other!r}")
    return fusion


class Ends:
    """The encoded image x and baseline b (B, N, D), and their projections (one (B, N, E) pair per projection)."""

    def __init__(self, fusion: FusionInput, inputs: ExplainInputs, baseline: str | float, grid: tuple[int, int]):
        pixels = inputs.pixels
        B = pixels.shape[0]
        both = fusion.encoded(torch.cat([pixels, image_baseline(pixels, baseline, grid)]))    # (2B, N, D)
        self.x, self.b = both[:B], both[B:]
        with torch.no_grad():
            projected = fusion.project(both)
        self.px = [p[:B] for p in projected]
        self.pb = [p[B:] for p in projected]
        self.fusion, self.inputs, self.B = fusion, inputs, B

    @property
    def linear(self) -> bool:
        return bool(self.px)

    def rows_per_pass(self) -> int:
        """Items × steps (or perturbations) per pass, so the mixed tensors stay near ROW_BYTES."""
        ends = self.px if self.linear else [self.x]
        per_row = sum(p[0].numel() * p.element_size() for p in ends)
        return max(1, ROW_BYTES // per_row)

    def mix(self, weights: torch.Tensor) -> list[torch.Tensor]:
        """weights (k, B, N) in [0, 1] per token: k·B rows (step-major) of b + w (x − b), projected if linear."""
        k = weights.shape[0]
        w = weights[..., None]
        pairs = zip(self.pb, self.px) if self.linear else [(self.b, self.x)]
        return [(b[None] + w.to(b.dtype) * (x - b)[None]).reshape(k * self.B, *b.shape[1:]) for b, x in pairs]

    def score(self, mixed: list[torch.Tensor], trim: bool = True) -> torch.Tensor:
        """(rows,) the target's score with these image tokens; for a contrastive target, minus the contrast's."""
        rows = mixed[0].shape[0]
        value = self._score(self.inputs.tiled(rows), mixed, trim)
        if self.inputs.contrast is not None:
            value = value - self._score(self.inputs.contrast.tiled(rows), mixed, trim)
        return value

    def _score(self, inputs: ExplainInputs, mixed: list[torch.Tensor], trim: bool) -> torch.Tensor:
        if self.linear:
            return self.fusion.score(inputs, projected=mixed, trim=trim)
        return self.fusion.score(inputs, mixed[0], trim=trim)


def integrated_gradients(fusion: FusionInput, inputs: ExplainInputs, *, steps: int, baseline: str | float,
                         grid: tuple[int, int], method: str = "gausslegendre") -> torch.Tensor:
    """(B, N) IG attributions of every image token at the fusion input (summed over its width); they add up to
    score(image) − score(baseline image), up to the rule's approximation error."""
    ends = Ends(fusion, inputs, baseline, grid)
    step_sizes, alphas = approximation_parameters(method)
    a = torch.tensor(alphas(int(steps)), device=ends.x.device)                 # (S,)
    wts = torch.tensor(step_sizes(int(steps)), device=ends.x.device)           # (S,)
    B, N = ends.x.shape[:2]
    chunk = max(1, ends.rows_per_pass() // B)
    totals = [torch.zeros_like(p) for p in (ends.px if ends.linear else [ends.x])]   # Σ w_s ∂f/∂(mixed)
    for lo in range(0, len(a), chunk):
        alpha = a[lo:lo + chunk]
        k = len(alpha)
        mixed = [m.requires_grad_(True) for m in ends.mix(alpha[:, None, None].expand(k, B, N))]
        with torch.enable_grad():
            grads = torch.autograd.grad(ends.score(mixed).sum(), mixed)
        step_w = wts[lo:lo + k, None, None, None]
        for t, g in zip(totals, grads):
            t += (g.reshape(k, B, *g.shape[1:]) * step_w.to(g.dtype)).sum(0)
    grad_x = fusion.pull_back(ends.x, totals) if ends.linear else totals[0]    # (B, N, D)
    return ((ends.x - ends.b).float() * grad_x.float()).sum(-1)               # (B, N)


def region_index(grid: tuple[int, int], regions: tuple[int, int] | None, n_tokens: int, device) -> torch.Tensor:
    """(N,) the region of each image token: patches by a `regions` grid (None: one per patch), -1 for the tokens
    before the patches (CLS)."""
    h, w = grid
    gh, gw = regions or grid
    if not (1 <= gh <= h and 1 <= gw <= w):
        raise InputError(f"regions must be between 1×1 and the {h}×{w} patch grid, not {gh}×{gw}")
    rows = torch.arange(h, device=device) * gh // h
    cols = torch.arange(w, device=device) * gw // w
    patch = (rows[:, None] * gw + cols[None, :]).flatten()                     # (h*w,)
    return torch.cat([torch.full((n_tokens - h * w,), -1, device=device, dtype=torch.long), patch])


def occlusion(fusion: FusionInput, inputs: ExplainInputs, *, regions: tuple[int, int] | None,
              baseline: str | float, grid: tuple[int, int]) -> torch.Tensor:
    """(B, h*w): score(image) − score(image with the region's tokens taken from the baseline), per patch."""
    with torch.no_grad():
        ends = Ends(fusion, inputs, baseline, grid)
        B, N = ends.x.shape[:2]
        region = region_index(grid, regions, N, ends.x.device)                 # (N,)
        G = int(region.max()) + 1
        keep = torch.ones(G + 1, N, device=ends.x.device)                      # row 0: the image itself
        keep[1:] = (region[None, :] != torch.arange(G, device=ends.x.device)[:, None]).float()
        chunk = max(1, ends.rows_per_pass() // B)
        scores = []
        for lo in range(0, G + 1, chunk):
            k = keep[lo:lo + chunk]
            scores.append(ends.score(ends.mix(k[:, None, :].expand(len(k), B, N))).reshape(len(k), B))
        s = torch.cat(scores)                                                  # (G + 1, B)
        drop = (s[0:1] - s[1:]).T                                              # (B, G)
        return drop[:, region[-grid[0] * grid[1]:]].float()                   # (B, h*w)


def shapley(fusion: FusionInput, inputs: ExplainInputs, *, regions: tuple[int, int] | None, samples: int,
            baseline: str | float, grid: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """(B, h*w): sampled Shapley values of the regions (absent: the baseline's tokens), per patch."""
    with torch.no_grad():
        ends = Ends(fusion, inputs, baseline, grid)
        B, N = ends.x.shape[:2]
        region = region_index(grid, regions, N, ends.x.device)
        G = int(region.max()) + 1
        cls = (region < 0)[None]

        def f(gate: torch.Tensor) -> torch.Tensor:                             # gate (n, G), n = k·B step-major
            k = gate.shape[0] // B
            per_token = torch.where(cls, 1.0, gate[:, region.clamp_min(0)])      # (n, N)
            return ends.score(ends.mix(per_token.reshape(k, B, N)))

        ones = torch.ones(B, G, device=ends.x.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            phi = ShapleyValueSampling(f).attribute(
                ones, baselines=torch.zeros_like(ones), n_samples=int(samples),
                perturbations_per_eval=max(1, ends.rows_per_pass() // B))     # (B, G)
        return phi[:, region[-grid[0] * grid[1]:]].float()
