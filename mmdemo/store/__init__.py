"""Corrections store: every corrected caption or answer with its provenance, never lost, exportable.

    from mmdemo.store import open_store
    store = open_store()                         # SQLite at $MMDEMO_DATA_DIR/corrections.db, or $MMDEMO_DATABASE_URL
    cid = store.add(image, "a red circle", "a large red circle", model="shapes-cross", annotator="ana")
    store.update(cid, "a large red circle above a star", "ben")   # version 2; version 1 kept
    store.get(cid).history, store.list(search="circle"), store.stats()

    export(store, "parquet", "corrections.parquet")  # or csv, jsonl, coco; import_coco("captions.json")

    store.create_campaign("spring", model="shapes-cross", overlap=2)        # campaigns: a shared, leased queue
    store.add_tasks("spring", [{"image": image, "image_path": "a.png", "model_output": "a red circle",
                                "question": None, "token_probs": [0.9, 0.4, 0.8]}])
    task = store.next_task("spring", "ana"); store.submit_task(task.id, "a red square", "ana")
    store.campaign_status("spring")                  # progress, agreement, annotators (see _campaigns)

Exports and imports live in mmdemo.store.exports (pandas/pyarrow load only when an export runs).
"""
from ._campaigns import ORDERS, Campaign, Task
from ._text import LIMITS, TASKS, DiffOp, edit_rate, word_diff
from .exports import COLUMNS, FORMATS, export, import_coco
from .store import Correction, NotFoundError, Store, Version, open_store

__all__ = ["COLUMNS", "ORDERS", "Campaign", "Task", "FORMATS", "LIMITS", "TASKS", "Correction", "DiffOp", "NotFoundError", "Store", "Version",
           "edit_rate", "export", "import_coco", "open_store", "word_diff"]
