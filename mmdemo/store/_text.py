"""Text hygiene for everything the store keeps, and the word-level diff between model output and correction."""
from __future__ import annotations

import difflib
import json
import re
from typing import Any, NamedTuple

from ..errors import InputError

# Longest text, in characters, the store accepts per field. Longer input is refused, never cut.
LIMITS: dict[str, int] = {
    "corrected": 2_000,
    "model_output": 4_000,
    "question": 1_000,
    "note": 2_000,
    "annotator": 100,
    "model": 200,
    "model_revision": 200,
    "decoding": 2_000,      # the decoding settings, as JSON
    "campaign": 100,        # a campaign's name
    "instructions": 4_000,  # a campaign's instructions to annotators
}
TASKS = ("caption", "vqa")

# C0 and C1 control characters and DEL, except tab and newline (kept: they are text).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")


def clean_text(value: Any, field: str, *, required: bool = False, single_line: bool = False) -> str | None:
    """Return `value` as clean text: control characters removed, CRLF made LF, ends stripped.

    HTML and markup are kept verbatim: the store keeps plain text and never renders it.
    None or blank gives None, or InputError when `required`. Over the field's limit: InputError.
    """
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    else:
        raise InputError(f"{field} must be text, not {type(value).__name__}")
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _SPACES.sub(" ", text).strip() if single_line else text.strip()
    if not text:
        if required:
            raise InputError(f"{field} is empty")
        return None
    limit = LIMITS[field]
    if len(text) > limit:
        raise InputError(f"{field} is too long: {len(text):,} characters, the limit is {limit:,}")
    return text


def clean_task(task: Any) -> str:
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    return task


def clean_decoding(decoding: Any) -> dict[str, Any] | None:
    """Decoding settings (a `Decoding`, or a dict such as its `to_dict()`): a small JSON object, or None."""
    if decoding is None:
        return None
    if hasattr(decoding, "to_dict"):
        decoding = decoding.to_dict()
    if not isinstance(decoding, dict):
        raise InputError(f"decoding must be a dict of settings, not {type(decoding).__name__}")
    try:
        text = json.dumps(decoding, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"decoding settings must be JSON values: {e}") from None
    if len(text) > LIMITS["decoding"]:
        raise InputError(f"decoding settings are too long: {len(text):,} characters as JSON, "
                         f"the limit is {LIMITS['decoding']:,}")
    return json.loads(_CONTROL.sub("", text))


class DiffOp(NamedTuple):
    op: str        # "equal" | "delete" (only in the model output) | "insert" (only in the correction)
    text: str      # the words, joined by single spaces


def word_diff(a: str | None, b: str | None) -> list[DiffOp]:
    """Word-level diff from `a` (model output) to `b` (correction), for display.

    >>> [tuple(d) for d in word_diff("a red circle", "a blue circle")]
    [('equal', 'a'), ('delete', 'red'), ('insert', 'blue'), ('equal', 'circle')]
    """
    wa, wb = (a or "").split(), (b or "").split()
    out: list[DiffOp] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(DiffOp("equal", " ".join(wa[i1:i2])))
            continue
        if i2 > i1:
            out.append(DiffOp("delete", " ".join(wa[i1:i2])))
        if j2 > j1:
            out.append(DiffOp("insert", " ".join(wb[j1:j2])))
    return out


def edit_rate(a: str | None, b: str | None) -> float:
    """Word-level Levenshtein distance from `a` to `b` (substituted, deleted, inserted words), per word of `a`.

    0.0 when the correction keeps the model output; 1.0 when every word changed; can exceed 1.0
    when words were added. Words are split on whitespace, case and punctuation count.

    >>> edit_rate("a red circle left of a star", "a star left of a red circle")
    0.5714285714285714
    """
    wa, wb = (a or "").split(), (b or "").split()
    return word_distance(wa, wb) / max(len(wa), 1)


def word_distance(wa: list[str], wb: list[str]) -> int:
    """Levenshtein distance between two word lists (rapidfuzz compares list items as symbols)."""
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(wa, wb))
