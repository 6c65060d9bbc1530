"""Campaigns for the app: thin calls on the store's campaign methods; pre-annotation uses the pool's models."""
from __future__ import annotations

import os
from typing import Any, Callable


class Campaigns:
    """store: returns the open corrections store; loader: a model by name (the pool's)."""

    def __init__(self, store: Callable[[], Any], loader: Callable[[str], Any]):
        self.store, self.loader = store, loader

    def campaigns(self) -> list[Any]:
        """Every campaign (store Campaign objects), oldest first."""
        return self.store().list_campaigns()

    def campaign(self, name: str) -> Any:
        return self.store().get_campaign(name)

    def create_campaign(self, name: str, images: str | os.PathLike, *, model: str, **settings: Any) -> tuple[Any, bool]:
        """Create campaign `name` (or refill it) from a folder, COCO file or table; pre-annotation uses this
        service's models. Returns (mmdemo.campaigns.FillResult, whether it existed)."""
        from ..campaigns import create_and_fill

        return create_and_fill(self.store(), name, images, model=model, loader=self.loader, **settings)

    def next_task(self, campaign: str, annotator: str) -> Any:
        """Lease the next task of `campaign` to `annotator` (a store Task), or None when none is left for them."""
        return self.store().next_task(campaign, annotator)

    def submit_task(self, task_id: int, corrected: str, annotator: str) -> str:
        """Save the annotator's text for the task; returns the correction id."""
        return self.store().submit_task(task_id, corrected, annotator)

    def skip_task(self, task_id: int, annotator: str) -> None:
        self.store().skip_task(task_id, annotator)

    def previous_task(self, campaign: str, annotator: str, before: int | None = None) -> Any:
        return self.store().previous_task(campaign, annotator, before)

    def review_task(self, correction_id: str, action: str, reviewer: str, *, corrected: str | None = None,
                    version: int | None = None) -> dict[str, Any]:
        return self.store().review_task(correction_id, action, reviewer, corrected=corrected, version=version)

    def review_queue(self, campaign: str, limit: int = 50) -> list[dict[str, Any]]:
        return self.store().review_queue(campaign, limit=limit)

    def campaign_status(self, campaign: str) -> dict[str, Any]:
        return self.store().campaign_status(campaign)

    def campaign_counts(self, campaign: str) -> dict[str, int]:
        return self.store().campaign_counts(campaign)

    def edit_correction(self, correction_id: str, corrected: str, annotator: str | None = None) -> dict[str, Any]:
        """A new version of any saved correction; returns it with its history (JSON-ready)."""
        return self.store().update(correction_id, corrected, annotator).to_dict(history=True)

    def restore_version(self, correction_id: str, version: int, annotator: str | None = None) -> dict[str, Any]:
        """An earlier version's text becomes the latest (as a new version); returns the correction with its history."""
        return self.store().restore_version(correction_id, version, annotator).to_dict(history=True)
