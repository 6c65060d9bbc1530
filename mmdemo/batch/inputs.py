"""What a batch job reads: image paths from a folder, a Parquet table, a COCO JSON file or a text list; questions."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from ..errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")
PATH_COLUMNS = ("image_path", "path", "file_name", "image", "file")   # first one present names the images


def list_inputs(source: str | os.PathLike, questions: Iterable[str] | None = None) -> list[dict]:
    """The job's items, `{"image_path": absolute path, "question": str | None}`, in a stable order.

    source: a folder (its image files, recursively, sorted), a `.parquet` table (a column of paths, or of
    `{"path": …}` as `datasets` writes images; an optional `question` column), a COCO JSON file (`images[].file_name`)
    or a `.txt` list (one path a line). Relative paths are relative to the file that lists them.
    questions: asked of every image (one item per image and question); without them, a table's own `question`
    column is used when it has one."""
    path = Path(source)
    if not path.exists():
        raise InputError(f"no such input: {str(path)!r}")
    if path.is_dir():
        pairs = [(str(p), None) for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    elif path.suffix.lower() == ".parquet":
        pairs = _from_parquet(path)
    elif path.suffix.lower() == ".json":
        pairs = [(name, None) for name in _from_coco(path)]
    elif path.suffix.lower() in (".txt", ".lst", ".csv"):
        pairs = [(line.strip(), None) for line in _text(path).splitlines() if line.strip() and not line.startswith("#")]
    else:
        raise InputError(f"--input must be a folder, a .parquet, a COCO .json or a .txt list, not {path.name!r}")
    if not pairs:
        raise InputError(f"no images found in {str(path)!r}")
    base = path if path.is_dir() else path.parent
    pairs = [(os.path.abspath(p if Path(p).is_absolute() or path.is_dir() else base / p), q) for p, q in pairs]
    asked = [q for q in (questions or [])]
    for q in asked:
        if not q.strip():
            raise InputError("a question is empty")
    if asked:
        return [{"image_path": p, "question": q} for p, _ in pairs for q in asked]
    return [{"image_path": p, "question": q} for p, q in pairs]


def read_questions(file: str | os.PathLike) -> list[str]:
    """One question a line; blank lines and lines starting with # are left out."""
    questions = [line.strip() for line in _text(Path(file)).splitlines()]
    questions = [q for q in questions if q and not q.startswith("#")]
    if not questions:
        raise InputError(f"no questions in {str(file)!r}")
    return questions


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such file: {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {str(path)!r}: {e}") from None


def _from_parquet(path: Path) -> list[tuple[str, str | None]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise InputError(f"cannot read {str(path)!r} as Parquet: {e}") from None
    column = next((c for c in PATH_COLUMNS if c in table.column_names), None)
    if column is None:
        raise InputError(f"{path.name} has no column of image paths (one of {', '.join(PATH_COLUMNS)})")
    values = table.column(column).to_pylist()
    paths = [v.get("path") if isinstance(v, dict) else v for v in values]
    if any(not isinstance(p, str) or not p for p in paths):
        raise InputError(f"column {column!r} of {path.name} must hold file paths (images stored as bytes are not read)")
    questions = table.column("question").to_pylist() if "question" in table.column_names else [None] * len(paths)
    return list(zip(paths, questions))


def _from_coco(path: Path) -> list[str]:
    try:
        data = json.loads(_text(path))
        names = [image["file_name"] for image in data["images"]]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{path.name} is not COCO JSON with images[].file_name ({e})") from None
    return list(dict.fromkeys(names))
