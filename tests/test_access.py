"""Logins that count: the access rule on its own, then the app with OAuth on (gradio's local OAuth, its profile
lookup replaced so no network is needed) through gradio_client and through its handlers with a fake profile."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mmdemo.access import Access, AccessError
from mmdemo.config import settings
from mmdemo.errors import MmdemoError


# --- the rule, no gradio ---------------------------------------------------------------------------
def test_without_oauth_everyone_may_do_everything_and_the_typed_name_is_kept():
    rules = Access(oauth=False)
    assert rules.annotator(None, " ana ") == "ana" and rules.annotator(None, "") is None
    assert rules.is_admin(None)
    rules.require_admin(None, "Exports")
    assert rules.stats(None, {"corrections": 1, "by_annotator": {"ana": 1}})["by_annotator"] == {"ana": 1}


def test_with_oauth_saving_needs_a_login_and_records_that_user():
    rules = Access(oauth=True, admins=frozenset({"boss"}))
    with pytest.raises(AccessError, match="log in"):
        rules.annotator(None, "mallory")
    assert rules.annotator("ana", "mallory") == "ana"            # the typed name is ignored
    assert issubclass(AccessError, MmdemoError)                  # the UI shows its message, the CLI exits 2


def test_with_oauth_exports_and_names_are_for_admins_only():
    rules = Access(oauth=True, admins=frozenset({"boss"}))
    with pytest.raises(AccessError, match="log in"):
        rules.require_admin(None, "Exports")
    with pytest.raises(AccessError, match="ana is not one"):
        rules.require_admin("ana", "Exports")
    rules.require_admin("Boss", "Exports")                       # user names compare case-insensitively
    numbers = {"corrections": 2, "by_model": {"m": 2}, "by_annotator": {"ana": 2}}
    assert "by_annotator" not in rules.stats("ana", numbers) and rules.stats("ana", numbers)["by_model"] == {"m": 2}
    assert rules.stats("boss", numbers) == numbers
    assert not Access(oauth=True).is_admin("anyone")              # no admins named: nobody


@pytest.mark.parametrize("env, oauth, admins", [
    ({}, False, ()),
    ({"MMDEMO_OAUTH": "1"}, True, ()),
    ({"OAUTH_CLIENT_ID": "abc", "SPACE_AUTHOR_NAME": "owner"}, True, ("owner",)),
    ({"OAUTH_CLIENT_ID": "abc", "MMDEMO_OAUTH": "0"}, False, ()),
    ({"MMDEMO_OAUTH": "yes", "MMDEMO_ADMINS": "ana, ben ,", "SPACE_AUTHOR_NAME": "owner"}, True, ("ana", "ben")),
])
def test_settings(monkeypatch, env, oauth, admins):
    for k in ("MMDEMO_OAUTH", "OAUTH_CLIENT_ID", "MMDEMO_ADMINS", "SPACE_AUTHOR_NAME"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = settings()
    assert (cfg.oauth, cfg.admins) == (oauth, admins)


# --- the app with OAuth on ----------------------------------------------------------------------------
gr = pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from mmdemo.models.registry import get_entry  # noqa: E402
from mmdemo.service import Service  # noqa: E402
from helpers import example, tiny_models  # noqa: E402

FAKE_LOGIN = {"access_token": "mock", "token_type": "bearer", "expires_in": 3600, "scope": "openid profile",
              "expires_at": 2_000_000_000,
              "userinfo": {"name": "Test", "preferred_username": "tester", "profile": "", "picture": ""}}


def profile(username: str) -> gr.OAuthProfile:
    return gr.OAuthProfile({"name": username.title(), "preferred_username": username,
                            "profile": f"https://huggingface.co/{username}", "picture": ""})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def oauth_app(tmp_path_factory):
    """The app with OAuth on and `boss` the only admin; gradio's local mock login asks whoami() at start-up, which
    needs the network: it is given a fixed profile instead."""
    import gradio.oauth

    from mmdemo.ui import build_app, launch_options

    mp = pytest.MonkeyPatch()
    mp.setenv("MMDEMO_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    mp.setenv("MMDEMO_OAUTH", "1")
    mp.setenv("MMDEMO_ADMINS", "boss")
    for k in ("MMDEMO_DATABASE_URL", "MMDEMO_MODELS", "SPACE_ID", "SYSTEM", "MMDEMO_HUB_DATASET"):
        mp.delenv(k, raising=False)
    mp.setattr(gradio.oauth, "_get_mocked_oauth_info", lambda: dict(FAKE_LOGIN))
    service = Service() if get_entry("shapes-cross").available() else Service(preloaded=tiny_models())
    demo = build_app(service, warm=False)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(), quiet=True,
                            **launch_options())
    yield demo, url, service
    demo.close()
    service.close()
    mp.undo()


def handler_named(demo, api_name: str):
    return next(f.fn for f in demo.fns.values() if f.api_name == api_name)


def test_the_app_shows_a_login_button_only_with_oauth(oauth_app, monkeypatch):
    from mmdemo.ui import build_app

    demo, _, service = oauth_app
    assert demo.expects_oauth
    monkeypatch.delenv("MMDEMO_OAUTH")
    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    assert not build_app(service, warm=False).expects_oauth


def test_anonymous_api_calls_to_export_corrections_and_save_are_refused(oauth_app):
    _, url, _ = oauth_app
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match="Exports are for admins: log in"):
        client.predict("csv", api_name="/export")
    with pytest.raises(AppError, match="corrections table and its annotator names are for admins: log in"):
        client.predict("", "", "", "", api_name="/corrections")
    with pytest.raises(AppError, match="log in with Hugging Face .* to save corrections"):
        client.predict(handle_file(example(1)["path"]), "shapes-cross", "caption", "a red square", "",
                       "a small red square", "mallory", "", api_name="/save_correction")
    assert "by_annotator" not in client.predict(api_name="/stats")     # counts yes, annotator names no


def test_a_logged_in_non_admin_can_save_but_not_export(oauth_app):
    demo, _, service = oauth_app
    save, export = handler_named(demo, "save_correction"), handler_named(demo, "export")
    corrections, stats = handler_named(demo, "corrections"), handler_named(demo, "stats")
    from PIL import Image

    image = Image.open(example(2)["path"]).convert("RGB")
    saved = save(image, "shapes-cross", "caption", "a red square", "", "a small red square", "mallory", "", None,
                 profile("ana"))
    assert service.store().get(saved["id"]).annotator == "ana"          # the login, not the typed name
    with pytest.raises(gr.Error, match="Exports are for admins, and ana is not one"):
        export("csv", profile("ana"))
    with pytest.raises(gr.Error, match="for admins, and ana is not one"):
        corrections("", "", "", "", profile("ana"))
    assert "by_annotator" not in stats(profile("ana"))
    # the admin sees it all
    path = export("csv", profile("boss"))
    assert "a small red square" in Path(path).read_text(encoding="utf-8")
    table = corrections("", "", "", "", profile("boss"))
    assert "ana" in set(table["annotator"]) and stats(profile("boss"))["by_annotator"]["ana"] >= 1
