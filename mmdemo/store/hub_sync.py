"""Corrections mirrored as dataset shards, so they survive a restart (a Space's disk is wiped at each one).

`MMDEMO_HUB_DATASET` says where: a Hugging Face dataset repo id (`user/corrections`; needs `HF_TOKEN`), or a local
folder used in its place with the same layout (an absolute path, one starting with `.` or `~`, or an existing
folder). The mirror format:

    data/corrections-<writer>.jsonl   one JSON object per line: a correction as it was saved at that moment
                                       (`Correction.to_dict(history=True)`: every field, every version, deleted
                                       or not) plus `saved_at`; <writer> = host-pid-random, one file per process
    data/campaigns-<writer>.jsonl     campaigns, their tasks, submissions (status and review) and skips, one
                                       record per row change, keyed by names rather than database ids (the
                                       record kinds: mmdemo/store/_campaign_mirror.py); leases are not kept
    images/<ab>/<sha256>.png           each image once (corrections' and campaign tasks'), the PNG bytes exactly
                                       as the store keeps them

A reader keeps, per correction id (per campaign row), the line with the latest `saved_at` (file order breaks
ties); a line that does not parse (a shard cut mid-write) is skipped. Older shards without `history` restore as
one version.

Folder mode writes lines and images straight into the folder. Repo mode writes them into `<data_dir>/hub_mirror/`,
which `huggingface_hub.CommitScheduler` commits to the dataset every few minutes (and once more on close). On
start-up an empty store restores itself: from the folder, or from the repo's files fetched with
`huggingface_hub.snapshot_download`. A failure to push or to restore is logged; saving never fails because of it.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

EVERY_MINUTES = 5.0
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
PATTERNS = ["data/*.jsonl", "images/*.png"]                # what is pushed and fetched


def is_folder(target: str) -> bool:
    """Is MMDEMO_HUB_DATASET a local folder (rather than a dataset repo id)?"""
    path = Path(target).expanduser()
    return (path.is_absolute() or target.startswith((".", "~")) or path.is_dir()
            or not _REPO_ID.fullmatch(target) or ".." in target)


def image_path(folder: Path, image_hash: str) -> Path:
    return folder / "images" / image_hash[:2] / f"{image_hash}.png"


class HubSync:
    """Writes each saved correction (and its image, once) into the mirror folder; `scheduler` pushes that folder.

    folder: the mirror (the dataset folder itself in folder mode). repo_id/token: where restore() downloads from
    (None in folder mode: it reads `folder`).
    """

    def __init__(self, folder: Path, scheduler: Any | None = None, *, repo_id: str | None = None,
                 token: str | None = None):
        self.folder = Path(folder)
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        writer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.shard = self.folder / "data" / f"corrections-{writer}.jsonl"
        self.campaign_shard = self.folder / "data" / f"campaigns-{writer}.jsonl"
        self.scheduler = scheduler
        self.repo_id = repo_id
        self.token = token
        # The scheduler holds its lock while it uploads; writing under it keeps lines and images whole.
        self._lock = getattr(scheduler, "lock", None) or threading.Lock()

    @staticmethod
    def mirror_folder(data_dir: Path) -> Path:
        return Path(data_dir) / "hub_mirror"

    @classmethod
    def from_env(cls, data_dir: Path) -> "HubSync | None":
        """The sync the environment asks for, or None (not asked; a repo id without HF_TOKEN or huggingface_hub)."""
        target = os.environ.get("MMDEMO_HUB_DATASET", "").strip()
        if not target:
            return None
        if is_folder(target):
            return cls(Path(target).expanduser())
        token = os.environ.get("HF_TOKEN", "").strip()
        if not token:
            log.warning("MMDEMO_HUB_DATASET=%s but no HF_TOKEN: corrections are not mirrored", target)
            return None
        try:
            from huggingface_hub import CommitScheduler
        except ImportError:
            log.warning("MMDEMO_HUB_DATASET is set but huggingface_hub is not installed: no hub sync")
            return None
        folder = cls.mirror_folder(data_dir)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        try:  # creates the repo if needed: network
            scheduler = CommitScheduler(repo_id=target, repo_type="dataset", folder_path=folder, path_in_repo="",
                                        every=EVERY_MINUTES, token=token, private=True, allow_patterns=PATTERNS)
        except Exception as e:  # noqa: BLE001 - saving must go on; the mirror is kept on disk
            log.warning("hub sync: cannot reach dataset %s (%s); corrections stay in %s", target, e, folder)
            scheduler = None
        return cls(folder, scheduler, repo_id=target, token=token)

    # --- writing ---------------------------------------------------------------------------------
    def needs_image(self, image_hash: str) -> bool:
        return not image_path(self.folder, image_hash).is_file()

    def append(self, record: dict[str, Any], image: bytes | None = None) -> None:
        """Mirror one saved state of a correction; `image`: its PNG bytes when the mirror lacks them."""
        line = json.dumps({**record, "saved_at": _now()}, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            if image is not None and self.needs_image(record["image_hash"]):
                _write_whole(image_path(self.folder, record["image_hash"]), image)   # before the line naming it
            with open(self.shard, "a", encoding="utf-8") as f:
                f.write(line)

    def append_campaign(self, records: list[dict[str, Any]], images: dict[str, bytes]) -> None:
        """Mirror campaign rows as they are now (_campaign_mirror's records); `images`: PNG bytes by hash."""
        stamp = _now()
        lines = "".join(json.dumps({**r, "saved_at": stamp}, ensure_ascii=False, sort_keys=True) + "\n"
                        for r in records)
        with self._lock:
            for h, png in images.items():
                if self.needs_image(h):
                    _write_whole(image_path(self.folder, h), png)
            with open(self.campaign_shard, "a", encoding="utf-8") as f:
                f.write(lines)

    def close(self) -> None:
        """Push what is left now (blocks until the commit is done)."""
        if self.scheduler is not None:
            try:
                self.scheduler.trigger().result()
                self.scheduler.stop()
            except Exception as e:  # noqa: BLE001 - shutdown must not raise; the mirror stays on disk
                log.warning("hub sync: last push failed: %s", e)

    # --- reading ---------------------------------------------------------------------------------
    def source(self) -> Path | None:
        """The folder to restore from: this folder, or the dataset's files downloaded now (None if unreachable)."""
        if self.repo_id is None:
            return self.folder
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(self.repo_id, repo_type="dataset", token=self.token,
                                          allow_patterns=PATTERNS))
        except Exception as e:  # noqa: BLE001 - a first start (no repo yet) or no network: start empty
            log.warning("hub sync: cannot download dataset %s to restore from (%s)", self.repo_id, e)
            return None

    def restore(self, store: Any) -> int:
        """Fill an EMPTY store (no corrections, no campaigns) from the dataset's shards: corrections with their
        versions, then campaigns with their tasks, submissions and skips, and the images of both. Returns how many
        corrections came back (0 if the store was not empty)."""
        if store.count(include_deleted=True) > 0 or store.list_campaigns():
            return 0
        folder = self.source()
        if folder is None:
            return 0

        def read(h: str) -> bytes | None:
            return _read(image_path(folder, h))

        n = store.restore_mirror(latest_records(folder), read)
        campaigns = store.restore_campaigns(campaign_records(folder), read)
        if n or campaigns:
            log.info("restored %d corrections and %d campaigns from %s", n, campaigns, self.repo_id or folder)
        return n


def read_records(folder: Path, campaigns: bool = False) -> Iterator[dict[str, Any]]:
    """Every parseable line of every corrections shard under folder/data/ (any depth), in file order; with
    `campaigns`, of every campaigns shard instead."""
    for shard in sorted((Path(folder) / "data").rglob("*.jsonl")):
        if shard.name.startswith("campaigns-") != campaigns:
            continue
        with open(shard, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and (campaigns or isinstance(record.get("id"), str)):
                    yield record


def campaign_records(folder: Path) -> list[dict[str, Any]]:
    """The campaign records, oldest saved first (a restore keeps the last one per row)."""
    return sorted(read_records(folder, campaigns=True), key=_stamp)


def latest_records(folder: Path) -> list[dict[str, Any]]:
    """One record per correction id: the latest saved state (older shards carry no saved_at: updated_at stands in)."""
    best: dict[str, dict[str, Any]] = {}
    for r in read_records(folder):
        old = best.get(r["id"])
        if old is None or _stamp(r) >= _stamp(old):
            best[r["id"]] = r
    return sorted(best.values(), key=lambda r: (r.get("created_at") or "", r["id"]))


def _stamp(record: dict[str, Any]) -> str:
    return str(record.get("saved_at") or record.get("updated_at") or "")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _write_whole(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
