"""Fill a correction campaign from what teams have: a folder of images, a COCO-captions file, or a
Parquet/CSV table of image paths (with existing captions or answers, which become the text to correct).

    from mmdemo.campaigns import read_sources, fill_campaign
    result = fill_campaign(store, "spring-audit", read_sources("photos/"))   # pre-annotates with the model

Images without a text are pre-annotated by the campaign's model in batches (a tqdm bar), keeping each
caption's token probabilities. Filling is resumable: an image (× question) the campaign already has is
skipped before the model runs. An unreadable image is listed in the result and skipped, never fatal.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import InputError, MmdemoError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
PATH_COLUMNS = ("image_path", "image", "path", "file_name", "file", "filename")
TEXT_COLUMNS = ("caption", "text", "model_output", "corrected")


@dataclass(frozen=True)
class Source:
    path: str                       # the image file
    text: str | None = None         # an existing caption (or answer) to correct; None: ask the model
    question: str | None = None     # vqa: this row's question (None: the campaign's questions)


@dataclass
class FillResult:
    name: str
    read: int = 0                                   # sources looked at
    added: int = 0                                  # tasks added now
    skipped: int = 0                                # tasks the campaign already had
    unreadable: list[dict[str, str]] = field(default_factory=list)   # [{"path", "error"}]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "read": self.read, "added": self.added, "skipped": self.skipped,
                "unreadable": self.unreadable}


def read_sources(spec: str | Path) -> list[Source]:
    """The images (and texts) `spec` names: a folder (every image under it, sorted), a COCO-captions
    .json, or a .parquet / .csv table with an image path column and optional caption/question columns."""
    src = Path(spec)
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {src}")
        return [Source(str(p)) for p in files]
    if not src.is_file():
        raise InputError(f"no such file or folder: {src}")
    suffix = src.suffix.lower()
    if suffix == ".json":
        return _coco_sources(src)
    if suffix in (".parquet", ".csv"):
        return _table_sources(src)
    if suffix in IMAGE_SUFFIXES:
        return [Source(str(src))]
    raise InputError(f"{src}: give a folder of images, a COCO-captions .json, or a .parquet/.csv table")


def _coco_sources(src: Path) -> list[Source]:
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{src} is not a readable JSON file: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise InputError(f"{src} is not a COCO-captions file: it needs an 'images' list")
    captions: dict[Any, str] = {}
    for ann in doc.get("annotations") or []:
        if isinstance(ann, dict) and isinstance(ann.get("caption"), str) and ann.get("image_id") not in captions:
            captions[ann.get("image_id")] = ann["caption"]
    out = []
    for im in doc["images"]:
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str):
            raise InputError(f"{src}: every image needs a file_name")
        name = im["file_name"]
        path = next((p for p in (src.parent / name, src.parent / "images" / name) if p.is_file()), src.parent / name)
        out.append(Source(str(path), captions.get(im.get("id"))))
    return out


def _table_sources(src: Path) -> list[Source]:
    import pandas as pd

    try:
        df = pd.read_parquet(src) if src.suffix.lower() == ".parquet" else pd.read_csv(src, dtype=str,
                                                                                        keep_default_na=False)
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad input file
        raise InputError(f"{src} is not a readable table: {str(e).splitlines()[0] if str(e) else e}") from None
    path_col = next((c for c in PATH_COLUMNS if c in df.columns), None)
    if path_col is None:
        raise InputError(f"{src} has no image path column (one of {', '.join(PATH_COLUMNS)})")
    text_col = next((c for c in TEXT_COLUMNS if c in df.columns), None)
    if text_col is None and "answer" in df.columns:
        text_col = "answer"
    out = []
    for rec in df.to_dict("records"):
        raw = rec[path_col]
        if isinstance(raw, dict) and "path" in raw:      # a `datasets` Image column
            raw = raw["path"]
        if not isinstance(raw, str) or not raw:
            continue
        path = Path(raw) if Path(raw).is_absolute() else src.parent / raw
        out.append(Source(str(path), _text(rec.get(text_col)) if text_col else None, _text(rec.get("question"))))
    if not out:
        raise InputError(f"{src} names no images")
    return out


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def fill_campaign(store: Any, name: str, sources: Iterable[Source], *, batch_size: int = 16,
                  progress: bool = True, model: Any | None = None,
                  loader: Callable[[str], Any] | None = None) -> FillResult:
    """Add every source to campaign `name`, pre-annotating those without a text with the campaign's
    model (loaded once, only if needed, by `loader` or the registry; `model` overrides it)."""
    from tqdm.auto import tqdm

    from . import images as intake
    from .store._campaigns import _key

    camp = store.get_campaign(name)
    have = store.campaign_keys(name)
    sources = list(sources)
    result = FillResult(name, read=len(sources))
    loaded = [model]

    def the_model() -> Any:
        if loaded[0] is None:
            if loader is None:
                from .models.registry import load as registry_load

                loaded[0] = registry_load(camp.model)
            else:
                loaded[0] = loader(camp.model)
            revision = getattr(getattr(loaded[0], "info", None), "revision", None)
            if camp.model_revision is None and revision:
                store.set_model_revision(name, revision)
        return loaded[0]

    bar = tqdm(total=len(sources), desc=f"campaign {name}", unit="image", disable=not progress)
    try:
        for batch in _chunks(sources, batch_size):
            todo: list[tuple[Source, Any, list[str | None]]] = []
            for s in batch:
                try:
                    img = intake.load_image(s.path)
                except (MmdemoError, OSError) as e:
                    result.unreadable.append({"path": s.path, "error": str(e).splitlines()[0] if str(e) else
                                              type(e).__name__})
                    continue
                h = intake.content_hash(img)
                questions: list[str | None] = [None] if camp.task == "caption" else \
                    ([s.question] if s.question else list(camp.questions))
                fresh = [q for q in questions if _key(h, q) not in have]
                result.skipped += len(questions) - len(fresh)
                if fresh:
                    todo.append((s, img, fresh))
            items = _annotate(camp, todo, the_model)
            if items:
                result.added += store.add_tasks(name, items)
                have |= {_key(intake.content_hash(i["image"]), i["question"]) for i in items}
            bar.update(len(batch))
    finally:
        bar.close()
    return result


def _annotate(camp: Any, todo: list[tuple[Source, Any, list[str | None]]], the_model: Any) -> list[dict[str, Any]]:
    """Task items for one batch: existing texts as they are, the rest from one model call per kind."""
    items: list[dict[str, Any]] = []
    need: list[tuple[Source, Any, str | None]] = []
    for s, img, questions in todo:
        for q in questions:
            if s.text is not None and (camp.task == "caption" or q == s.question):
                items.append({"image": img, "image_path": s.path, "model_output": s.text, "question": q,
                              "token_probs": None})
            else:
                need.append((s, img, q))
    if not need:
        return items
    model = the_model()
    from .models.base import Decoding

    decoding = Decoding().to_dict()        # model.caption(images) decodes with the defaults
    if camp.task == "caption":
        for (s, img, _), cap in zip(need, model.caption([img for _, img, _ in need])):
            items.append({"image": img, "image_path": s.path, "model_output": cap.text, "question": None,
                          "tokens": [t for t, _ in cap.tokens], "token_probs": [float(p) for _, p in cap.tokens],
                          "decoding": decoding})
    else:
        answers = model.answer([img for _, img, _ in need], [q for _, _, q in need])
        for (s, img, q), ans in zip(need, answers):
            items.append({"image": img, "image_path": s.path, "model_output": ans.answer, "question": q,
                          "tokens": [ans.answer], "token_probs": [float(ans.prob)]})
    return items


def _chunks(seq: list[Source], n: int) -> Iterator[list[Source]]:
    for i in range(0, len(seq), max(1, n)):
        yield seq[i:i + n]


def unpack_uploads(paths: Iterable[str | Path], into: Path, *, max_files: int = 20_000) -> Path:
    """Uploaded files (images, zips of images, a COCO .json or a .csv/.parquet table with its images in a zip)
    laid out under `into`; returns what read_sources should read: the one table or COCO file found at the
    top, else the folder. Zip members keep their relative paths; absolute paths and `..` are refused."""
    import shutil
    import zipfile

    into.mkdir(parents=True, exist_ok=True)
    count = 0
    for p in map(Path, paths):
        if p.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(p) as z:
                    for member in z.infolist():
                        if member.is_dir():
                            continue
                        rel = Path(member.filename)
                        if rel.is_absolute() or ".." in rel.parts:
                            raise InputError(f"{p.name}: unsafe path in the zip: {member.filename!r}")
                        if rel.suffix.lower() not in (*IMAGE_SUFFIXES, ".json", ".csv", ".parquet") \
                                or rel.name.startswith("."):
                            continue
                        count += 1
                        if count > max_files:
                            raise InputError(f"more than {max_files:,} files uploaded")
                        target = into / rel
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with z.open(member) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst)
            except zipfile.BadZipFile:
                raise InputError(f"{p.name} is not a readable zip file") from None
        else:
            count += 1
            if count > max_files:
                raise InputError(f"more than {max_files:,} files uploaded")
            shutil.copyfile(p, into / p.name)
    tables = [f for f in sorted(into.iterdir()) if f.suffix.lower() in (".json", ".csv", ".parquet")]
    if len(tables) > 1:
        raise InputError("upload one COCO .json or one .csv/.parquet table at most, with its images")
    return tables[0] if tables else into


def create_and_fill(store: Any, name: str, images: str | Path, *, model: str,
                    loader: Callable[[str], Any] | None = None, batch_size: int = 16, progress: bool = True,
                    **settings: Any) -> tuple[FillResult, bool]:
    """Create campaign `name` (or refill it when it exists with the same task and model) from `images`
    (see read_sources); returns (what the fill did, whether the campaign already existed)."""
    from .store.store import NotFoundError

    sources = read_sources(images)              # bad input fails before anything is written
    try:
        camp = store.get_campaign(name)
        task = settings.get("task", "caption")
        if camp.task != task or camp.model != model:
            raise InputError(f"campaign {name!r} exists with task {camp.task} and model {camp.model}; "
                             f"refill it with the same task and model")
        resumed = True
    except NotFoundError:
        store.create_campaign(name, model=model, **settings)
        resumed = False
    result = fill_campaign(store, name, sources, batch_size=batch_size, progress=progress, loader=loader)
    return result, resumed
