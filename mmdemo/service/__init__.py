"""What the UI calls: one object over parts with one job each — the model pool (which models, loaded once, locks,
devices), requests (caption, ask, explain, modality, faithfulness), corrections (the store) and campaigns.

    from mmdemo.service import Service
    service = Service()                                   # cheap: models and store open on first use
    service.caption("assets/examples/scene-1.png").caption
    service.ask("assets/examples/scene-1.png", "what color is the square?").answer

No gradio here. Every entry point takes raw input (a path, bytes, PIL image or numpy array) and runs it through
`images.load_image`; every failure a user can act on is an `MmdemoError` whose message is for them. Model calls go
through `service.gpu`, which runs them the ZeroGPU way on a Space with a GPU.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from ..images import ImageSource
from ..models.base import MAX_NEW_TOKENS, STRATEGIES, Decoding, VLModel
from .campaigns import Campaigns
from .corrections import Corrections, diff
from .pool import ModelPool
from .requests import MAX_QUESTION_CHARS, MAX_TOP_K, Requests, clean_question
from .results import AnswerResult, CaptionResult, ModelChoice, SavedCorrection


class Service:
    """Models by name, explanations, corrections. See ModelPool, Requests and Corrections for the arguments."""

    def __init__(self, *, preloaded: Mapping[str, VLModel] | None = None, store_url: str | None = None,
                 loader: Callable[..., VLModel] | None = None):
        self.pool = ModelPool(preloaded, loader)
        self.requests = Requests(self.pool)
        self.corrections_ = Corrections(store_url)
        pool, requests = self.pool, self.requests
        # the model pool
        self.models, self.default_model, self.fusion_models = pool.models, pool.default_model, pool.fusion_models
        self.model, self.suggest, self.knows, self.info = pool.model, pool.suggest, pool.knows, pool.info
        self.warm, self.preload = pool.warm, pool.preload
        # requests
        self.caption, self.ask, self.methods = requests.caption, requests.ask, requests.methods
        self.explain, self.modality, self.faithfulness = requests.explain, requests.modality, requests.faithfulness
        self.explain_tokens = requests.explain_tokens
        # corrections
        c = self.corrections_
        self.store, self.corrections, self.count, self.stats = c.store, c.list, c.count, c.stats
        self.export, self.image_bytes, self.close = c.export, c.image_bytes, c.close
        # campaigns
        self.campaigns_ = Campaigns(c.store, pool.model)
        for name in ("campaigns", "campaign", "create_campaign", "next_task", "submit_task", "skip_task",
                     "previous_task", "review_task", "review_queue", "campaign_status", "campaign_counts",
                     "edit_correction", "restore_version"):
            setattr(self, name, getattr(self.campaigns_, name))

    def save_correction(self, image: ImageSource, model_output: str | None, corrected: str, *, model_name: str,
                        **fields: Any) -> SavedCorrection:
        """Save a correction; the model's revision is recorded when the model is loaded here."""
        loaded = self.pool.loaded(model_name)
        revision = loaded.info.revision if loaded is not None else None
        return self.corrections_.save(image, model_output, corrected, model_name=model_name,
                                      model_revision=revision, **fields)

    diff = staticmethod(diff)

    # fine-tuning on a campaign's corrections (service/finetune.py): admins only, one run at a time
    def start_finetune(self, campaign: str, *, user: str | None = None, **options: Any) -> dict[str, Any]:
        return self._finetunes().start(campaign, user=user, **options)

    def finetune_status(self, job_id: str | None = None) -> dict[str, Any]:
        return self._finetunes().status(job_id)

    def _finetunes(self) -> Any:
        if getattr(self, "finetunes_", None) is None:
            from .finetune import FinetuneJobs

            self.finetunes_ = FinetuneJobs(self.corrections_.store, self.pool.offer)
        return self.finetunes_


__all__ = ["AnswerResult", "CaptionResult", "Decoding", "MAX_NEW_TOKENS", "MAX_QUESTION_CHARS", "MAX_TOP_K",
           "ModelChoice", "SavedCorrection", "STRATEGIES", "Service", "clean_question"]
