"""Fine-tuning from the app: one background run at a time on a campaign's corrections, its progress, and the new
model offered by the pool when it is done. Admins only (mmdemo.access)."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..access import Access
from ..config import settings
from ..errors import InputError


class FinetuneJobs:
    """store: returns the open corrections store; offer: adds a model folder to the pool's offered models."""

    def __init__(self, store: Callable[[], Any], offer: Callable[[str], None]):
        self.store, self.offer = store, offer
        self._jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def start(self, campaign: str, *, user: str | None = None, model: str | None = None, steps: int = 200,
              approved_only: bool = False, original_scenes: int = 200) -> dict[str, Any]:
        """Start fine-tuning the campaign's model (or `model`) on its corrections in a background thread; returns
        the job ({"id", "state", "stage", "step", "steps", "out", "report", "error"})."""
        from ..train.finetune import FinetuneSettings, corrections_from_store

        Access.from_settings().require_admin(user, "fine-tuning")
        with self._lock:
            if any(j["state"] == "running" for j in self._jobs.values()):
                raise InputError("a fine-tuning run is already going; wait for it to finish")
        camp = self.store().get_campaign(campaign)
        base = model or camp.model
        data = corrections_from_store(self.store(), campaign=campaign, approved_only=approved_only)
        if not data.examples:
            raise InputError(f"campaign {campaign!r} has no corrections to learn from"
                             + (" (approved ones only)" if approved_only else ""))
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        out = settings().data_dir / "models" / f"{Path(base).name}-{campaign}-{stamp}"
        job = {"id": uuid.uuid4().hex[:12], "state": "running", "stage": "loading", "step": 0, "steps": int(steps),
               "model": base, "campaign": campaign, "out": str(out), "report": None, "error": None,
               "started": time.time()}
        with self._lock:
            self._jobs[job["id"]] = job
        run = FinetuneSettings(steps=int(steps), original_scenes=int(original_scenes))
        threading.Thread(target=self._run, args=(job, data, run), daemon=True, name=f"finetune-{job['id']}").start()
        return self.status(job["id"])

    def _run(self, job: dict[str, Any], data: Any, run: Any) -> None:
        from ..train.finetune import finetune

        def tell(stage: str, step: int, steps: int) -> None:
            job.update(stage=stage, step=step, steps=steps)

        try:
            job["report"] = finetune(job["model"], data, job["out"], run, progress=False, on_step=tell,
                                     command=f"app: fine-tune on campaign {job['campaign']}")
            self.offer(job["out"])
            job.update(state="done", stage="done")
        except Exception as e:  # noqa: BLE001 - the job reports any failure to whoever polls it
            job.update(state="failed", error=f"{type(e).__name__}: {e}")

    def status(self, job_id: str | None = None) -> dict[str, Any]:
        """One job (None: the latest one), JSON-ready; {} when there is none."""
        with self._lock:
            jobs = list(self._jobs.values())
        job = next((j for j in jobs if j["id"] == job_id), None) if job_id else (jobs[-1] if jobs else None)
        if job is None:
            if job_id:
                raise InputError(f"no fine-tuning job {job_id!r}")
            return {}
        return {k: v for k, v in job.items()} | {"seconds": round(time.time() - job["started"], 1)}
