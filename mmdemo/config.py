"""Settings read from environment variables, in one dataclass."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from e


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")            # MMDEMO_DATA_DIR: corrections store and images
    database_url: str | None = None          # MMDEMO_DATABASE_URL: overrides the SQLite file
    default_model: str = "shapes-cross"      # MMDEMO_DEFAULT_MODEL
    max_pixels: int = 40_000_000             # MMDEMO_MAX_PIXELS: refuse larger images before decoding
    max_upload_bytes: int = 25 * 2**20       # MMDEMO_MAX_UPLOAD_BYTES: refuse larger files
    device: str | None = None                # MMDEMO_DEVICE: "cpu", "cuda", … (None: cuda when present)
    extra_models: tuple[str, ...] = field(default_factory=tuple)  # MMDEMO_MODELS: comma list offered in the UI
    oauth: bool = False                      # MMDEMO_OAUTH=1, or OAUTH_CLIENT_ID (a Space with hf_oauth): logins count
    admins: tuple[str, ...] = field(default_factory=tuple)  # MMDEMO_ADMINS: comma list (default: SPACE_AUTHOR_NAME)
    lease_seconds: int = 600                 # MMDEMO_LEASE_SECONDS: how long a campaign task stays with an annotator


def settings() -> Settings:
    """Current settings; read on every call so tests can change the environment."""
    env = os.environ
    return Settings(
        data_dir=Path(env.get("MMDEMO_DATA_DIR") or "data"),
        database_url=env.get("MMDEMO_DATABASE_URL") or None,
        default_model=env.get("MMDEMO_DEFAULT_MODEL") or "shapes-cross",
        max_pixels=_int("MMDEMO_MAX_PIXELS", 40_000_000),
        max_upload_bytes=_int("MMDEMO_MAX_UPLOAD_BYTES", 25 * 2**20),
        device=env.get("MMDEMO_DEVICE") or None,
        extra_models=_names(env.get("MMDEMO_MODELS", "")),
        oauth=_flag(env.get("MMDEMO_OAUTH")) if (env.get("MMDEMO_OAUTH") or "").strip()
        else bool((env.get("OAUTH_CLIENT_ID") or "").strip()),
        admins=_names(env.get("MMDEMO_ADMINS", "")) or _names(env.get("SPACE_AUTHOR_NAME", "")),
        lease_seconds=_int("MMDEMO_LEASE_SECONDS", 600),
    )


def _names(raw: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in raw.split(",") if m.strip())


def _flag(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes", "on")
