"""Corrections: the store (opened on first use), saves with their word diff, pages, counts and exports."""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from typing import Any

from ..errors import InputError, MmdemoError, StoreError
from ..images import ImageSource, load_image
from .requests import clean_question, optional
from .results import SavedCorrection

log = logging.getLogger(__name__)


class Corrections:
    """store_url: where the store lives (None: MMDEMO_DATABASE_URL, else SQLite in the data folder). A store that
    cannot be opened fails these calls only; captioning and answering go on."""

    def __init__(self, store_url: str | None = None):
        self._url = store_url
        self._store: Any = None
        self._guard = threading.Lock()

    def store(self) -> Any:
        """The corrections store, opened on first use. StoreError when it cannot be (the rest goes on working)."""
        with self._guard:
            if self._store is None:
                module = optional("mmdemo.store")
                if module is None:
                    raise StoreError("saving corrections is not available in this installation (no mmdemo.store)")
                try:
                    self._store = module.open_store(self._url)
                except MmdemoError:
                    raise
                except Exception as e:  # a driver or file-system failure the store did not translate
                    log.exception("cannot open the corrections store")
                    raise StoreError(f"the corrections store cannot be opened: {e}") from None
            return self._store

    def save(self, image: ImageSource, model_output: str | None, corrected: str, *, model_name: str,
             model_revision: str | None = None, task: str = "caption", question: str | None = None,
             annotator: str | None = None, note: str | None = None,
             decoding: dict[str, Any] | None = None) -> SavedCorrection:
        """Save a corrected caption (task "caption") or answer (task "vqa"); the store checks the text and keeps
        it verbatim."""
        picture = load_image(image)
        if task not in ("caption", "vqa"):
            raise InputError(f"task must be caption or vqa, not {task!r}")
        if task == "vqa":
            question = clean_question(question)
        if not isinstance(model_name, str) or not model_name.strip():
            raise InputError("say which model produced the output")
        if not isinstance(corrected, str) or not corrected.strip():
            raise InputError("the correction is empty; type the corrected text")
        store = self.store()
        cid = store.add(picture, model_output, corrected, model=model_name, model_revision=model_revision or None,
                        task=task, question=question if task == "vqa" else None, annotator=annotator, note=note,
                        decoding=decoding)
        return SavedCorrection(cid, store.count(), [(op.op, op.text) for op in diff(model_output, corrected)])

    def list(self, **filters: Any) -> list[Any]:
        """A page of corrections, newest first (`Store.list` filters: model, task, annotator, search, limit, …)."""
        return self.store().list(**_given(filters))

    def count(self, **filters: Any) -> int:
        return self.store().count(**_given(filters))

    def stats(self) -> dict[str, Any]:
        return self.store().stats()

    def export(self, fmt: str, folder: str | os.PathLike | None = None, **filters: Any) -> str:
        """Write the corrections in `fmt` (csv, jsonl, coco, parquet) to a new file outside the data folder (a
        fresh temporary folder unless `folder` is given) and return its path."""
        module = optional("mmdemo.store.exports")
        if module is None:
            raise StoreError("exports are not available in this installation (no mmdemo.store.exports)")
        if fmt not in module.FORMATS:
            raise InputError(f"export format must be one of {', '.join(module.FORMATS)}, not {fmt!r}")
        out = folder or tempfile.mkdtemp(prefix="mmdemo-export-")
        suffix = {"coco": "coco.json", "jsonl": "jsonl"}.get(fmt, fmt)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = os.path.join(out, f"corrections-{stamp}.{suffix}")
        return module.export(self.store(), fmt, path, **_given(filters)).path

    def image_bytes(self, image_hash: str) -> bytes:
        return self.store().image_bytes(image_hash)

    def close(self) -> None:
        with self._guard:
            if self._store is not None:
                self._store.close()
                self._store = None


def diff(model_output: str | None, corrected: str | None) -> list[Any]:
    """Word-level diff from the model output to the correction (a list of store DiffOps)."""
    module = optional("mmdemo.store")
    if module is None:
        raise StoreError("word diffs need mmdemo.store, which is not installed")
    return module.word_diff(model_output, corrected)


def _given(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if v not in (None, "")}
