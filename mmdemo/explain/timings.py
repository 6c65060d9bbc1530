"""How long a map takes, roughly: the seconds measured per method, model and device, shipped in assets/timings.json.

`python benchmarks/method_timings.py` measures every image method on one caption token (one answer for a
question-only model) with the app's default options, on this machine's device, and writes the table; `--hub`
adds the hub families, built at full size with random weights (timing does not depend on the values). The
app's method pickers read it here (no torch import) to say "ig (~5 s)" before a user waits.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from ..config import ASSETS

TIMINGS_FILE = ASSETS / "timings.json"


@lru_cache(maxsize=1)
def _table(mtime: float) -> dict[str, Any]:
    try:
        return json.loads(TIMINGS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def table() -> dict[str, Any]:
    """{"models": {name: {device: {"seconds": {method: s}, "measured", "threads"}}}} (empty when absent)."""
    try:
        return _table(TIMINGS_FILE.stat().st_mtime)
    except OSError:
        return {}


def typical_seconds(model_name: str | None, method: str, device: str = "cpu") -> float | None:
    """Measured seconds of one `method` map on this model and device kind ("cpu", "cuda"), or None."""
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    row = ((table().get("models") or {}).get(model_name or "") or {}).get(kind) or {}
    value = (row.get("seconds") or {}).get(method)
    return float(value) if isinstance(value, (int, float)) else None


def rough(seconds: float) -> str:
    """A duration as a person would say it before waiting: <0.1 s, ~0.4 s, ~5 s, ~2 min."""
    if seconds < 0.1:
        return "<0.1 s"
    if seconds < 1:
        return f"~{seconds:.1f} s"
    if seconds < 90:
        return f"~{seconds:.0f} s"
    return f"~{seconds / 60:.0f} min"


def labelled(model_name: str | None, methods: list[str], device: str = "cpu") -> list[tuple[str, str]]:
    """(label, method) choices for a picker: "ig (~5 s)" where a time was measured, the bare name elsewhere."""
    out = []
    for m in methods:
        s = typical_seconds(model_name, m, device)
        out.append((m if s is None else f"{m} ({rough(s)})", m))
    return out
