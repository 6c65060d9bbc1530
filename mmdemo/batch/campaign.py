"""`--campaign NAME`: turn a batch job's successful rows into a correction campaign's tasks (pre-annotation)."""
from __future__ import annotations

from typing import Any, Iterable

from ..errors import InputError, MmdemoError

STORE_TASKS = {"caption": "caption", "ask": "vqa"}    # batch task -> campaign task
CAMPAIGN_COLUMNS = ["task", "model", "error", "image_path", "question", "caption", "answer", "token_probs"]


def campaign_items(tables: Iterable[Any], task: str, model: str | None) -> list[dict]:
    """One campaign task per successful row of `task` by `model`, as the store's `add_tasks` takes them."""
    items = []
    for table in tables:
        for row in table.to_pylist():
            if row["task"] != task or row["model"] != model or row["error"] is not None:
                continue
            output = row["caption"] if task == "caption" else row["answer"]
            items.append({"image": row["image_path"], "image_path": row["image_path"], "model_output": output,
                          "question": row["question"], "token_probs": list(row["token_probs"] or [])})
    return items


def add_to_campaign(name: str, task: str, model: str | None, revision: str | None, items: list[dict]) -> int:
    """Create campaign `name` if it is missing, then add `items` as its tasks (the store keeps one task per image
    and question, so a rerun adds only what is new). Returns how many items were passed."""
    from ..store import open_store

    if task not in STORE_TASKS:
        raise InputError("--campaign takes the rows of batch caption or batch ask")
    with open_store() as store:
        if not hasattr(store, "add_tasks") or not hasattr(store, "create_campaign"):
            raise InputError("campaigns are not available in this version of the store")
        if not _exists(store, name):
            store.create_campaign(name, model=model, model_revision=revision, task=STORE_TASKS[task])
        store.add_tasks(name, items)
    return len(items)


def _exists(store: Any, name: str) -> bool:
    try:
        store.campaign_status(name)
    except (MmdemoError, LookupError):
        return False
    return True
