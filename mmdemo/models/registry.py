"""Registry of named models: small entries, loaded lazily, so listing models imports no torch."""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UnknownModelError, WeightsMissingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    tasks: tuple[str, ...]
    fusion: str
    summary: str                        # one line for `mmdemo models` and the UI
    factory: str                        # "package.module:function", called as function(name, device=…)
    weights: Callable[[], bool]         # are the weights on this machine? (must not load them)
    source: str = ""                    # file, folder or hub id the weights come from
    missing: Callable[[], str] | None = None   # the message when weights are absent (where looked, how to get them)
    domain: str = "photos"              # the images it knows: "shapes" (the shapes world) or "photos"
    remote: bool = False                # weights come from a model hub: offered only on a Space or when named

    def available(self) -> bool:
        try:
            return bool(self.weights())
        except Exception:
            return False

    def to_dict(self) -> dict:
        return {"name": self.name, "tasks": list(self.tasks), "fusion": self.fusion, "domain": self.domain,
                "summary": self.summary, "available": self.available(), "source": self.source}


_REGISTRY: dict[str, ModelEntry] = {}
_loaded_families = False
FAMILIES_ENV = "MMDEMO_FAMILIES"        # extra modules that register model families, comma-separated


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def families() -> list[str]:
    """The modules that register model families: every package under mmdemo.models (a family is one folder), then
    the modules named by $MMDEMO_FAMILIES (a family kept outside this package, imported by its module name)."""
    import os
    import pkgutil

    from .. import models

    own = [f"{models.__name__}.{m.name}" for m in pkgutil.iter_modules(models.__path__) if m.ispkg]
    extra = [m.strip() for m in os.environ.get(FAMILIES_ENV, "").split(",") if m.strip()]
    return own + extra


def _ensure_families() -> None:
    global _loaded_families
    if not _loaded_families:
        _loaded_families = True
        for module in families():
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as e:
                if e.name != module:  # a family that exists but lacks a dependency is a real error
                    raise
                log.warning("model family %s (named in $%s) is not importable", module, FAMILIES_ENV)


def list_models() -> list[ModelEntry]:
    _ensure_families()
    return list(_REGISTRY.values())


def get_entry(name: str) -> ModelEntry:
    _ensure_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None


def resolve(name: str) -> ModelEntry:
    """A registered name, or a hub id / local folder that a hub family can open."""
    _ensure_families()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if Path(name).is_dir() or "/" in name:
        for resolver in _resolvers:
            entry = resolver(name)
            if entry is not None:
                return entry
    return get_entry(name)


_resolvers: list[Callable[[str], ModelEntry | None]] = []


def add_resolver(fn: Callable[[str], ModelEntry | None], *, first: bool = False) -> None:
    """Families register how to turn a hub id or folder into an entry. A resolver returns None for a name it does
    not recognise and the next one is asked; `first` puts one that recognises only its own folders ahead of
    catch-all ones (the hub's, which opens any folder)."""
    _resolvers.insert(0, fn) if first else _resolvers.append(fn)


def load(name: str | None = None, *, device: str | None = None):
    """Build a model by name (None: MMDEMO_DEFAULT_MODEL). Raises a clear error if weights are absent."""
    from ..config import settings

    entry = resolve(name or settings().default_model)
    if not entry.available():
        raise WeightsMissingError(entry.missing() if entry.missing else
                                  f"weights for {entry.name!r} are not on this machine (looked for {entry.source})")
    module, _, fn = entry.factory.partition(":")
    return getattr(importlib.import_module(module), fn)(entry.name, device=device)
