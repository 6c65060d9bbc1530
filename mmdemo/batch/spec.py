"""What a batch job computes for every input: one picklable value, shared by the engines and the rows function."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError
from ..models.base import Decoding

TASKS = ("caption", "ask", "explain")


@dataclass(frozen=True)
class Job:
    """What to compute for every input; picklable, so Ray ships it to its actors as it is."""
    task: str                           # caption | ask | explain
    model: str | None = None            # registered name, hub id or folder (None: MMDEMO_DEFAULT_MODEL)
    method: str = "attention"           # explain: the method, as `python -m mmdemo explain --method`
    options: tuple = ()                 # explain: method options as (name, value) pairs, e.g. (("steps", 16),)
    top_k: int = 5                      # ask: answers kept in top_k
    seed: int | None = 0                # torch's seed, set before every batch (the same rows on every engine)
    device: str | None = None           # cpu, cuda … (None: cuda when present)
    decoding: dict = field(default_factory=lambda: Decoding().to_dict())   # caption settings kept in every row

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"batch task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if self.task == "explain" and self.method == "modality":
            raise InputError("batch explain draws maps; modality (image vs text share) is not a map")
        if int(self.top_k) < 1:
            raise InputError(f"--top-k must be 1 or more, not {self.top_k}")
        object.__setattr__(self, "decoding", Decoding.from_dict(self.decoding).to_dict())
