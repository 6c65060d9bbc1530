"""Fixtures every test file may use, and the environment every test runs in: no network, no hub, no writes outside
pytest's temporary folders (unless a test asks for them). Plain helper functions live in helpers.py."""
from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """No downloads (HF offline, an empty HF home), a private data folder, and none of the settings a developer's
    shell may carry (database URL, extra models, a Space, hub sync, OAuth, a forced device)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
    mp.setenv("MMDEMO_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    for name in ("MMDEMO_DATABASE_URL", "MMDEMO_MODELS", "MMDEMO_DEFAULT_MODEL", "SPACE_ID", "MMDEMO_HUB_DATASET",
                 "HF_TOKEN", "MMDEMO_ALLOW_DOWNLOAD", "MMDEMO_DEVICE", "MMDEMO_OAUTH", "OAUTH_CLIENT_ID",
                 "MMDEMO_FAMILIES", "SPACES_ZERO_GPU", "HF_HUB_CACHE", "MMDEMO_VIT_BERT_PATH"):
        mp.delenv(name, raising=False)
    yield
    mp.undo()


# --- the corrections store on SQLite and, when MMDEMO_TEST_POSTGRES_URL is set, PostgreSQL ----------------------
def _with_search_path(url: str, schema: str) -> str:
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    """No hub sync, no database URL and a private data folder for every store test."""
    for name in ("MMDEMO_HUB_DATASET", "HF_TOKEN", "MMDEMO_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MMDEMO_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A URL to an empty store: a SQLite file under tmp_path, or a fresh schema on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'corrections.db'}"
        return
    base = os.environ.get("MMDEMO_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("MMDEMO_TEST_POSTGRES_URL is not set (source .ci/postgres.sh)")
    from sqlalchemy import create_engine, text

    from mmdemo.store.store import _postgres_url

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_postgres_url(base))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _with_search_path(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(store_url):
    from mmdemo.store import open_store

    s = open_store(store_url)
    yield s
    s.close()


# --- tiny random hub checkpoints (tests/tiny_hub.py), saved once and loaded through mmdemo.load(folder) ------------
@pytest.fixture(scope="session")
def tiny_hub_models(tmp_path_factory) -> dict:
    import mmdemo
    from tiny_hub import BUILDERS

    root = tmp_path_factory.mktemp("tiny_hub_models")
    out = {}
    for name, build in BUILDERS.items():
        build(root / name)
        folder = root / name / "model" if name == "vit-bert" else root / name
        out[name] = mmdemo.load(str(folder), device="cpu")
    return out
