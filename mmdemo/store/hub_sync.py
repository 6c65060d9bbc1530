"""Optional push of saved corrections to a Hugging Face dataset repo, as JSON Lines shards.

On when MMDEMO_HUB_DATASET (e.g. "org/corrections") and HF_TOKEN are set and huggingface_hub is
installed. Each process appends to its own shard, `<data_dir>/hub_sync/<host>-<pid>-<rand>/corrections.jsonl`,
and a `huggingface_hub.CommitScheduler` commits that folder to `data/<same name>/` in the repo every
few minutes, so replicas never write the same file. A shard line is the correction as saved at
that moment (add, update, delete, restore): readers keep the last line per `id`.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EVERY_MINUTES = 5.0


class HubSync:
    """Appends records to this process's shard; `scheduler` (a CommitScheduler, or None) pushes it."""

    def __init__(self, folder: Path, scheduler: Any | None = None):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard = folder / "corrections.jsonl"
        self.scheduler = scheduler
        # The scheduler holds its lock while it uploads; appending under it keeps lines whole.
        self._lock = getattr(scheduler, "lock", None) or threading.Lock()

    @staticmethod
    def shard_folder(data_dir: Path) -> Path:
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return Path(data_dir) / "hub_sync" / name

    @classmethod
    def from_env(cls, data_dir: Path) -> "HubSync | None":
        """The sync the environment asks for, or None (not asked, or huggingface_hub missing)."""
        repo_id = os.environ.get("MMDEMO_HUB_DATASET", "").strip()
        token = os.environ.get("HF_TOKEN", "").strip()
        if not repo_id or not token:
            return None
        try:
            from huggingface_hub import CommitScheduler
        except ImportError:
            log.warning("MMDEMO_HUB_DATASET is set but huggingface_hub is not installed: no hub sync")
            return None
        folder = cls.shard_folder(data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        try:  # creates the repo if needed: network
            scheduler = CommitScheduler(repo_id=repo_id, repo_type="dataset", folder_path=folder,
                                        path_in_repo=f"data/{folder.name}", every=EVERY_MINUTES, token=token,
                                        private=True)
        except Exception as e:  # noqa: BLE001 - saving must go on; the shard is kept on disk
            log.warning("hub sync: cannot reach dataset %s (%s); corrections stay in %s", repo_id, e, folder)
            scheduler = None
        return cls(folder, scheduler)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            with open(self.shard, "a", encoding="utf-8") as f:
                f.write(line)

    def close(self) -> None:
        """Push what is left now (blocks until the commit is done)."""
        if self.scheduler is not None:
            try:
                self.scheduler.trigger().result()
                self.scheduler.stop()
            except Exception as e:  # noqa: BLE001 - shutdown must not raise; the shard stays on disk
                log.warning("hub sync: last push failed: %s", e)
