"""Which text rows of an attention map belong to the target, and how many log-probability terms its score sums."""
from __future__ import annotations

import torch

from ..models.base import ExplainInputs

# where adapters keep the per-row weights of a caption target: (B, T) over next-token terms, row j predicts term j
ROW_KEYS = ("positions", "weight")


def row_weights(inputs: ExplainInputs, rows: int) -> torch.Tensor:
    """(B, rows) weights over the attention's text rows, each item's summing to 1.

    Caption and token targets: the rows that predict the scored tokens (row j predicts term j). Answers: row 0,
    the [CLS] position the answer head reads. A single row (late fusion's pooling query) is always that row."""
    B = inputs.pixels.shape[0]
    device = inputs.pixels.device
    w = next((inputs.extra[k] for k in ROW_KEYS if k in inputs.extra), None)
    if rows == 1 or w is None or inputs.targets[0].kind == "answer":
        out = torch.zeros(B, rows, device=device)
        out[:, 0] = 1
        return out
    w = w.float().to(device)[:, :rows]
    out = torch.zeros(B, rows, device=device)
    out[:, : w.shape[1]] = w
    return out / out.sum(1, keepdim=True).clamp_min(1e-12)


def term_count(inputs: ExplainInputs) -> torch.Tensor:
    """(B,) how many log-probabilities each item's score adds up (1 for an answer or a token)."""
    w = next((inputs.extra[k] for k in ROW_KEYS if k in inputs.extra), None)
    if w is None or inputs.targets[0].kind == "answer":
        return torch.ones(inputs.pixels.shape[0], device=inputs.pixels.device)
    return w.float().sum(1).clamp_min(1).to(inputs.pixels.device)
