"""The models a service offers: which ones, loaded lazily and once each, one lock per model, on their device."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Mapping

from ..config import settings
from ..errors import InputError, MmdemoError, UnknownModelError
from ..images import ImageSource, load_image
from ..models.base import FUSIONS, Decoding, VLModel
from ..models.registry import ModelEntry, list_models, resolve
from .results import ModelChoice

log = logging.getLogger(__name__)


class ModelPool:
    """Models by name. preloaded: models offered as they are (tests pass tiny ones), shadowing registered names;
    loader: how a name becomes a model (default `mmdemo.models.registry.load`)."""

    def __init__(self, preloaded: Mapping[str, VLModel] | None = None, loader: Callable[..., VLModel] | None = None):
        self._models: dict[str, VLModel] = dict(preloaded or {})
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in self._models}
        self._guard = threading.Lock()          # guards _locks (creating a model's lock)
        self._loader = loader
        self._offered: list[str] = []           # model folders added while running (fine-tuned here)

    # --- what is offered --------------------------------------------------------------------------------------
    def models(self, task: str | None = None) -> list[ModelChoice]:
        """Preloaded models, registered ones whose weights are here (hub models only on a Space, `SPACE_ID`, or
        when MMDEMO_MODELS names them), and MMDEMO_MODELS' others (hub ids, folders)."""
        cfg = settings()
        on_space = bool(os.environ.get("SPACE_ID"))
        wanted = set(cfg.extra_models)
        out: dict[str, ModelChoice] = {}
        for name, model in self._models.items():
            info = model.info
            out[name] = ModelChoice(name, tuple(info.tasks), info.fusion, info.knows or name, info.domain)
        for entry in list_models():
            if entry.name in out or not entry.available():
                continue
            if entry.remote and not (on_space or entry.name in wanted):
                continue
            out[entry.name] = _choice(entry)
        for name in (*cfg.extra_models, *self._offered):
            if name in out:
                continue
            try:
                entry = resolve(name)
            except MmdemoError as e:
                log.warning("MMDEMO_MODELS names %r, which cannot be offered: %s", name, e)
                continue
            if entry.available():
                out[name] = _choice(entry, name)
        return [c for c in out.values() if task is None or task in c.tasks]

    def offer(self, name: str) -> None:
        """Offer one more model by folder or hub id (as MMDEMO_MODELS would), e.g. one just fine-tuned here."""
        if name not in self._offered:
            self._offered.append(name)

    def default_model(self, task: str | None = None) -> str | None:
        """MMDEMO_DEFAULT_MODEL when offered (for the task), else the first offered model, else None."""
        names = [c.name for c in self.models(task)]
        wanted = settings().default_model
        return wanted if wanted in names else (names[0] if names else None)

    def fusion_models(self) -> list[str]:
        """The Fusion lab's columns: offered shapes-world models that answer questions, one per fusion kind,
        in FUSIONS order (early → cross → late)."""
        by_fusion: dict[str, str] = {}
        for c in self.models("vqa"):
            if c.domain == "shapes":
                by_fusion.setdefault(c.fusion, c.name)
        return [by_fusion[f] for f in FUSIONS if f in by_fusion]

    def suggest(self, image: ImageSource | None, name: str | None = None) -> str | None:
        """A model better suited to this image, or None: a photo model when a shapes-world model is asked about
        something that does not look like a shapes scene (and a photo model is offered here)."""
        from ..world.detect import looks_like_scene

        name = name or self.default_model()
        choice = next((c for c in self.models() if c.name == name), None)
        if image is None or choice is None or choice.domain != "shapes":
            return None
        if looks_like_scene(load_image(image)):
            return None
        photos = [c for c in self.models() if c.domain == "photos"]
        local = [c for c in photos if not _remote(c.name)]
        return (local or photos)[0].name if photos else None

    # --- loading --------------------------------------------------------------------------------------------
    def model(self, name: str | None = None) -> VLModel:
        """The model by name (None: the default), loaded on first use; only offered models can be loaded."""
        name = name or self.default_model()
        if not name:
            raise UnknownModelError("no model is available here: no model's weights are on this machine")
        if not isinstance(name, str):
            raise InputError(f"a model name must be text, not {type(name).__name__}")
        loaded = self._models.get(name)
        if loaded is not None:
            return loaded
        offered = [c.name for c in self.models()]
        if name not in offered:  # never open arbitrary folders or hub ids that a request names
            raise UnknownModelError(f"model {name!r} is not offered here; "
                                    f"choose one of: {', '.join(offered) or 'none'}")
        with self.lock(name):
            if name not in self._models:
                started = time.perf_counter()
                loader = self._loader
                if loader is None:
                    from ..models.registry import load as loader
                self._models[name] = loader(name)
                log.info("loaded %s in %.2f s", name, time.perf_counter() - started)
            return self._models[name]

    def loaded(self, name: Any) -> VLModel | None:
        """The model if it is loaded here already, else None (never loads)."""
        return self._models.get(name) if isinstance(name, str) else None

    def with_task(self, name: str | None, task: str) -> VLModel:
        model = self.model(name or self.default_model(task))
        if task not in model.info.tasks:
            verb = {"caption": "write captions", "vqa": "answer questions"}[task]
            others = ", ".join(c.name for c in self.models(task)) or "none here"
            raise InputError(f"{model.info.name} does not {verb}; models that do: {others}")
        return model

    def preload(self, names: list[str] | None = None) -> list[str]:
        """Load models now (default: every offered hub model), as ZeroGPU wants them: in the main process at
        start-up, each on its own device. Returns the names loaded; a failure is logged, not raised."""
        names = names if names is not None else [c.name for c in self.models() if _remote(c.name)]
        done = []
        for name in names:
            try:
                self.model(name)
                done.append(name)
            except MmdemoError as e:
                log.warning("cannot preload %s: %s", name, e)
        return done

    def warm(self, name: str | None = None) -> None:
        """Load a model and run it once on a tiny image, so that the first user request is fast."""
        from PIL import Image

        model = self.model(name)
        image = Image.new("RGB", (64, 64), (245, 245, 240))
        with self.lock(model.info.name):
            if "caption" in model.info.tasks:
                model.caption([image], Decoding(max_new_tokens=4))
            if "vqa" in model.info.tasks:
                model.answer([image], ["how many objects are there?"], top_k=1)

    def knows(self, name: str | None = None) -> str:
        """One sentence on what the model can see (its `info.knows`), for the UI."""
        model = self.model(name)
        return model.info.knows or f"{model.info.name}: no description of what it was trained on."

    def info(self, name: str | None = None) -> dict[str, Any]:
        return self.model(name).info.to_dict()

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())


def _remote(name: str) -> bool:
    try:
        return resolve(name).remote
    except MmdemoError:
        return False


def _choice(entry: ModelEntry, name: str | None = None) -> ModelChoice:
    return ModelChoice(name or entry.name, tuple(entry.tasks), entry.fusion, entry.summary, entry.domain)
