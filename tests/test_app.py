"""The app served on 127.0.0.1 and driven through gradio_client: every named endpoint, the right answer with the
shipped weights, and hostile input → a clear message while the app keeps serving."""
from __future__ import annotations

import io
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from mmdemo.service import Service
from helpers import TRAINED, example, huge_png, serve, served_app

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ENDPOINTS = {"/caption", "/explain", "/compare_methods", "/ask", "/explain_answer", "/modality", "/fusion",
             "/save_correction", "/corrections", "/stats", "/export", "/faithfulness", "/model_info"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def app(data_dir):
    """The app on the shipped weights when they are here, else on a tiny random model."""
    with served_app(data_dir) as url:
        yield url


@pytest.fixture(scope="module")
def client(app):
    return Client(app, verbose=False)


def caption(client, path, **kw):
    args = {"strategy": "greedy", "max_tokens": 24, "num_beams": 3, "top_p": 0.9, "temperature": 1.0, "seed": -1}
    args.update(kw)
    return client.predict(handle_file(path), "shapes-cross", *args.values(), api_name="/caption")


def ask(client, path, question, top_k=5):
    return client.predict(handle_file(path), question, "shapes-cross", top_k, api_name="/ask")


# --- the happy path --------------------------------------------------------------------------------
def test_the_api_has_every_named_endpoint(client):
    named = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert ENDPOINTS <= named, ENDPOINTS - named
    assert not any(name.startswith("/lambda") for name in named), "every public event has a chosen api_name"


def test_caption_an_example(client):
    out = caption(client, example(1)["path"])
    assert out["model"] == "shapes-cross"
    assert isinstance(out["caption"], str) and out["tokens"]
    assert all(0 <= t["prob"] <= 1 for t in out["tokens"])
    assert out["decoding"] == {"strategy": "greedy", "max_new_tokens": 24}


def test_ask_a_question(client):
    row = example(2)
    out = ask(client, row["path"], row["question"], top_k=3)
    assert out["question"] == row["question"]
    assert len(out["top_k"]) == 3 and out["answer"] == out["top_k"][0]["answer"]


@pytest.mark.skipif(not TRAINED, reason="shapes-cross weights are not in assets/models/ yet")
@pytest.mark.parametrize("i", range(1, 7))
def test_the_right_answer_and_caption_with_the_shipped_weights(client, i):
    row = example(i)
    assert ask(client, row["path"], row["question"])["answer"] == row["answer"]
    assert caption(client, row["path"])["caption"] == row["caption"]


def test_every_endpoint_once(client, data_dir):
    img = handle_file(example(1)["path"])
    cap = caption(client, example(1)["path"], max_tokens=8)["caption"]
    overlay, info = client.predict(img, "shapes-cross", cap, 0, "attention", 0.5, "jet", api_name="/explain")
    assert Path(overlay).is_file() and Image.open(overlay).size == (256, 256)
    assert info["method"] == "attention" and info["target"]["token"] == 0 and len(info["map"]) == info["grid"][0]
    gallery = client.predict(img, "shapes-cross", cap, -1, 0.5, "viridis", api_name="/compare_methods")
    assert len(gallery) >= 3 and all(Path(g["image"]).is_file() for g in gallery)
    overlay, info, words = client.predict(img, "shapes-cross", "what color is the square?", "red", "gradcam", 0.5,
                                          "jet", api_name="/explain_answer")
    assert info["target"] == {"kind": "answer", "text": "red", "question": "what color is the square?"}
    shares = client.predict(img, "shapes-cross", "what color is the square?", "red", api_name="/modality")
    assert shares["image_share"] + shares["text_share"] == pytest.approx(1.0, abs=1e-3)
    gallery, table = client.predict(img, "how many objects are there?", "attention", 1, api_name="/fusion")
    assert len(gallery) == len(table["data"]) >= 1
    # the early, cross and late models side by side, in that order (shipped weights, or the tiny ones)
    assert [row[0] for row in table["data"]] == ["shapes-early", "shapes-cross", "shapes-late"]
    assert [row[1] for row in table["data"]] == ["early", "cross", "late"]
    for row in table["data"]:
        assert row[4] + row[5] == pytest.approx(1.0, abs=1e-3)
    saved = client.predict(img, "shapes-cross", "caption", cap, "", "a small red square", "tester", "",
                           api_name="/save_correction")
    assert saved["count"] >= 1 and saved["id"]
    table = client.predict("", "", "tester", "", api_name="/corrections")
    assert saved["id"] in [row[-1] for row in table["data"]]
    assert client.predict(api_name="/stats")["corrections"] >= 1
    path = client.predict("csv", api_name="/export")
    assert "a small red square" in Path(path).read_text(encoding="utf-8")
    assert "knows" in client.predict("shapes-cross", api_name="/model_info")


@pytest.mark.slow
def test_faithfulness_table(client):
    table = client.predict(api_name="/faithfulness")
    assert table["headers"][0] == "method" and len(table["data"]) >= 3


@pytest.mark.parametrize("fmt", ["jsonl", "coco", "parquet"])
def test_every_export_format(client, fmt):
    path = client.predict(fmt, api_name="/export")
    assert Path(path).is_file() and Path(path).stat().st_size > 0


# --- hostile input ---------------------------------------------------------------------------------
def _write(tmp_path, name, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (128, 128), (10, 200, 10)).save(buf, format="JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


@pytest.mark.parametrize("name, data, message", [
    ("notes.txt", b"this is not an image", "'notes.txt' is not an image"),
    ("photo.jpg", None, "truncated or corrupt"),
    ("bomb.png", None, "20000×20000"),
])
def test_bad_uploads_give_a_clear_message(client, tmp_path, name, data, message):
    data = data if data is not None else (_truncated_jpeg() if name.endswith(".jpg") else huge_png())
    path = _write(tmp_path, name, data)
    with pytest.raises(AppError, match=message) as err:
        caption(client, path)
    assert "Traceback" not in str(err.value)
    with pytest.raises(AppError, match=message):
        ask(client, path, "how many objects are there?")
    assert ask(client, example(1)["path"], "how many objects are there?")["answer"]   # still serving


@pytest.mark.parametrize("question, message", [("", "question is empty"), ("   ", "question is empty"),
                                                ("why" * 3_333 + "?", "10,000 characters")],
                         ids=["empty", "blank", "10000-chars"])
def test_bad_questions_give_a_clear_message(client, question, message):
    with pytest.raises(AppError, match=message):
        ask(client, example(1)["path"], question)
    assert ask(client, example(1)["path"], "how many objects are there?")["answer"]


def test_bad_settings_give_a_clear_message(client):
    with pytest.raises(AppError, match="not offered here"):
        client.predict(handle_file(example(1)["path"]), "what?", "../../etc", 5, api_name="/ask")
    with pytest.raises(AppError, match="telepathy.*not in the list of choices"):  # Gradio checks radios itself
        caption(client, example(1)["path"], strategy="telepathy")
    with pytest.raises(AppError, match="does not work"):
        client.predict(handle_file(example(1)["path"]), "shapes-cross", "a red square", 0, "astrology", 0.5, "jet",
                       api_name="/explain")
    with pytest.raises(AppError, match="out of range"):
        client.predict(handle_file(example(1)["path"]), "shapes-cross", "a red square", 40, "attention", 0.5, "jet",
                       api_name="/explain")
    with pytest.raises(AppError, match="xlsx.*not in the list of choices"):
        client.predict("xlsx", api_name="/export")


def test_script_in_a_correction_is_kept_as_text(client):
    hostile = 'a red square <script>alert("x")</script> <img src=x onerror=alert(1)>'
    saved = client.predict(handle_file(example(1)["path"]), "shapes-cross", "caption", "a red square", "", hostile,
                           "<b>mallory</b>", "", api_name="/save_correction")
    assert {"op": "insert", "text": '<script>alert("x")</script> <img src=x onerror=alert(1)>'} in saved["diff"]
    table = client.predict("", "", "", "script", api_name="/corrections")
    row = next(r for r in table["data"] if r[-1] == saved["id"])
    assert row[0] == hostile and row[2] == "<b>mallory</b>"       # verbatim text; the table renders it as text
    assert ask(client, example(1)["path"], "how many objects are there?")["answer"]


def test_the_data_folder_is_not_served(app, data_dir):
    db = data_dir / "corrections.db"
    assert db.is_file()
    for route in ("gradio_api/file=", "file="):
        url = f"{app.rstrip('/')}/{route}{db}"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code in (403, 404)


def test_an_app_without_any_model_still_serves_and_says_why(tmp_path, monkeypatch):
    import mmdemo.service.pool as service_module

    monkeypatch.setenv("MMDEMO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(service_module, "list_models", lambda: [])
    demo, url = serve(Service())
    try:
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200
        client = Client(url, verbose=False)
        with pytest.raises(AppError, match="no model is available"):
            client.predict(handle_file(example(1)["path"]), "how many objects are there?", "", 5, api_name="/ask")
    finally:
        demo.close()


def test_why_this_word_and_not_another(client):
    """The caption's runner-up words feed the /explain endpoint's contrast (its last input)."""
    img = handle_file(example(1)["path"])
    out = caption(client, example(1)["path"])
    rows = out["tokens"]
    assert all("alternatives" in r for r in rows)
    i = next(k for k, r in enumerate(rows) if any(a["token"] != r["token"] for a in r["alternatives"]))
    other = next(a["token"] for a in rows[i]["alternatives"] if a["token"] != rows[i]["token"])
    overlay, info = client.predict(img, "shapes-cross", out["caption"], i, "saliency", 0.5, "jet", other,
                                   api_name="/explain")
    assert Path(overlay).is_file() and info["target"]["contrast"] == other and info["target"]["token"] == i
    assert info["measured"] is None or 0 <= info["measured"]["pointing"] <= 1
    _, same = client.predict(img, "shapes-cross", out["caption"], i, "saliency", 0.5, "jet", rows[i]["token"],
                             api_name="/explain")
    assert not any(any(row) for row in same["map"])                   # the word against itself: nothing
    _, plain = client.predict(img, "shapes-cross", out["caption"], i, "saliency", 0.5, "jet", "",
                              api_name="/explain")
    assert "contrast" not in plain["target"]
    with pytest.raises(AppError, match="cannot explain a contrast"):
        client.predict(img, "shapes-cross", out["caption"], i, "attention", 0.5, "jet", other, api_name="/explain")
