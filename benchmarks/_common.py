"""Shared bits of the benchmark scripts: timing with warm-up, JSON results, a printed table."""
from __future__ import annotations

import json
import re
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


def median_ms(fn: Callable[[], object], runs: int = 50, warmup: int = 5) -> float:
    """Median wall time of fn() in milliseconds, after warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def machine() -> dict:
    import os

    info = {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    try:
        import torch

        info |= {"torch": torch.__version__, "threads": torch.get_num_threads(),
                 "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    except ImportError:
        pass
    return info


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                **payload}, indent=2))
    return path


def table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


README = Path(__file__).resolve().parent.parent / "README.md"


def replace_between(start: str, end: str, text: str, readme: Path = README) -> bool:
    """Put `text` between the README's `start` and `end` markers; False when the markers are missing."""
    body = readme.read_text()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(body):
        return False
    readme.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", body))
    return True
