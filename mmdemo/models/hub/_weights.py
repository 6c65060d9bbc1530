"""Where a hub model's weights are: a local folder, or the Hugging Face cache. Never downloads, imports no torch.

The environment is read on every call (not at import, as huggingface_hub does), so tests and the CLI can change it:
HF_HUB_CACHE / HF_HOME / XDG_CACHE_HOME place the cache, HF_HUB_OFFLINE forbids the network, and
MMDEMO_ALLOW_DOWNLOAD=1 lets a hub id that is not cached be fetched on first use.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ._catalogue import BY_NAME, VIT_BERT_ENV

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_TRUE = ("1", "true", "yes", "on")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def offline() -> bool:
    return _flag("HF_HUB_OFFLINE") or _flag("TRANSFORMERS_OFFLINE")


def download_allowed() -> bool:
    return _flag("MMDEMO_ALLOW_DOWNLOAD") and not offline()


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved from the environment now."""
    env = os.environ
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var):
            return Path(env[var]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return xdg / "huggingface" / "hub"


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def is_hub_id(source: str) -> bool:
    """'org/name' that is not an existing path (the rule transformers applies: a folder wins)."""
    return bool(_HUB_ID.fullmatch(source)) and ".." not in source and not Path(source).exists()


@dataclass(frozen=True)
class Source:
    """Where one model's files are looked for."""
    name: str                           # what the user asked for
    location: str                       # a folder, or a hub id
    is_hub: bool

    @property
    def label(self) -> str:
        return f"{self.location} in the Hugging Face cache {hub_cache_dir()}" if self.is_hub else f"folder {self.location}"


def source_of(name: str) -> Source:
    """A registered name, a hub id or a folder -> where its files are."""
    spec = BY_NAME.get(name)
    if spec is not None and spec.repo:
        return Source(name, spec.repo, True)
    if spec is not None:                # vit-bert: a folder named by the environment
        return Source(name, os.environ.get(VIT_BERT_ENV, "").strip(), False)
    if is_hub_id(name):
        return Source(name, name, True)
    return Source(name, str(Path(name).expanduser()), False)


def hub_kwargs(location: str, fetch: bool | None = None) -> dict[str, object]:
    """from_pretrained keywords for a hub id (this cache; local files only unless fetching is allowed); {} for a folder."""
    if not is_hub_id(location):
        return {}
    return {"cache_dir": str(hub_cache_dir()), "local_files_only": not (download_allowed() if fetch is None else fetch)}


def cached_snapshot(repo: str) -> Path | None:
    """The cached snapshot folder holding config.json and weights for `repo`, or None (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cache = hub_cache_dir()
    try:
        config = try_to_load_from_cache(repo, "config.json", cache_dir=cache)
        if not isinstance(config, str):
            return None
        for name in WEIGHT_FILES:
            if isinstance(try_to_load_from_cache(repo, name, cache_dir=cache), str):
                return Path(config).parent
    except Exception:                   # a malformed id or an unreadable cache: not available
        return None
    return None


def folder_ready(folder: str | Path) -> bool:
    path = Path(folder)
    return bool(str(folder)) and (path / "config.json").is_file() and any((path / f).is_file() for f in WEIGHT_FILES)


def local_files(source: Source) -> Path | None:
    """The folder with config.json and the weights, if they are on this machine."""
    if not source.is_hub:
        return Path(source.location) if folder_ready(source.location) else None
    return cached_snapshot(source.location)


def weights_available(name: str) -> bool:
    """Are the weights here (or, with MMDEMO_ALLOW_DOWNLOAD=1 and no HF_HUB_OFFLINE, may they be fetched)?"""
    source = source_of(name)
    return local_files(source) is not None or (source.is_hub and download_allowed())


def missing_message(name: str) -> str:
    """One line: where the weights were looked for and how to get them."""
    source = source_of(name)
    if not source.is_hub and not source.location:
        return (f"{name!r} has no hub checkpoint and ${VIT_BERT_ENV} is not set: set it to a folder saved with "
                f"save_pretrained (build one with mmdemo.models.hub.assemble_vit_bert)")
    if not source.is_hub:
        return (f"no model in folder {source.location} (it needs config.json, model.safetensors or pytorch_model.bin, "
                f"and the tokenizer and image processor files that save_pretrained writes)")
    why = "HF_HUB_OFFLINE is set" if offline() else "downloads are off unless MMDEMO_ALLOW_DOWNLOAD=1"
    return (f"weights for {name!r} are not on this machine: looked for {source.location} in the Hugging Face cache "
            f"{hub_cache_dir()} ({why}); get them with `hf download {source.location}` "
            f"(`huggingface-cli download` on older huggingface_hub) on a machine with internet, "
            f"set MMDEMO_ALLOW_DOWNLOAD=1 to fetch them on first use, or pass a local folder saved with save_pretrained")


def revision_of(source: Source, folder: Path | None) -> str:
    """The hub commit of a cached snapshot, or a SHA-256 prefix of a folder's weight files."""
    if folder is None:
        return ""
    if source.is_hub:
        return folder.name              # snapshots/<commit>/
    digest = hashlib.sha256()
    for name in sorted(p.name for p in folder.iterdir() if p.name in WEIGHT_FILES or p.suffix in (".safetensors", ".bin")):
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]
