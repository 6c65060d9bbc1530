"""The Annotate and Review tabs through gradio_client: lease, save and next, skip, back, review with restore,
campaign status; and an app restarted mid-campaign continues where it was."""
from __future__ import annotations

import pytest

from mmdemo.service import Service
from mmdemo.store import open_store
from helpers import make_image, serve, served_app, tiny_models

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ENDPOINTS = {"/next_task", "/submit_task", "/skip_task", "/previous_task", "/review_task", "/review_queue",
             "/campaign_status", "/start_finetune", "/finetune_status"}
STATUS_KEYS = {"name", "images", "tasks_done", "images_done", "leased", "pending", "agreement", "annotators"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    with open_store(str(folder / "corrections.db"), sync=None) as store:
        store.create_campaign("team", model="shapes-cross", overlap=2, instructions="name every shape")
        store.add_tasks("team", [{"image": make_image(i, 16), "image_path": f"img-{i}.png",
                                  "model_output": f"a red circle {i}", "question": None,
                                  "tokens": ["a", "red", "circle", str(i)], "token_probs": [0.9, 0.4, 0.8, 0.99]}
                                 for i in range(4)])
    return folder


@pytest.fixture(scope="module")
def app(data_dir):
    with served_app(data_dir, tiny=True) as url:
        yield url


@pytest.fixture(scope="module")
def client(app):
    return Client(app, verbose=False)


def task_of(out):
    return out[0]["task"]


def test_campaign_endpoints_are_named(client):
    named = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert ENDPOINTS <= named, ENDPOINTS - named


def test_annotate_save_skip_back_and_review(client, data_dir):
    out = client.predict("team", "ana", api_name="/next_task")
    first = task_of(out)
    assert first["model_output"] == "a red circle 0" and first["token_probs"] == [0.9, 0.4, 0.8, 0.99]
    assert out[1] == str(first["id"]) and out[5] == "a red circle 0"          # task id, edit box
    assert "name every shape" in out[8] and "0 of 4 tasks done" in out[7]
    assert client.predict("team", "ana", api_name="/next_task")[1] == out[1]   # a reload keeps the lease

    out = client.predict("team", "ana", out[1], "a blue circle", api_name="/submit_task")
    saved, second = out[0]["saved"], task_of(out)
    assert saved and second["id"] != first["id"]
    out = client.predict("team", "ana", out[1], api_name="/skip_task")
    third = task_of(out)
    assert third["id"] not in (first["id"], second["id"])
    out = client.predict("team", "ana", out[1], api_name="/previous_task")   # back: the skipped one
    assert task_of(out)["id"] == second["id"]
    out = client.predict("team", "ana", out[1], api_name="/previous_task")   # back again: the saved one
    assert task_of(out)["id"] == first["id"] and out[5] == "a blue circle"

    out = client.predict("team", "ben", api_name="/next_task")
    assert task_of(out)["id"] == first["id"]                                # ana did it; overlap 2
    client.predict("team", "ben", out[1], "a blue circle", api_name="/submit_task")

    status = client.predict("team", api_name="/campaign_status")
    assert set(status) == STATUS_KEYS and status["tasks_done"] == 1
    assert status["agreement"]["word_similarity"] == 1.0

    sub, text = client.predict(saved, "edit", "rita", "a big blue circle", 1, api_name="/review_task")
    assert (sub["status"], sub["corrected"], sub["version"], text) == ("approved", "a big blue circle", 2,
                                                                      "a big blue circle")
    sub, _ = client.predict(saved, "restore", "rita", "", 1, api_name="/review_task")
    assert (sub["corrected"], sub["version"]) == ("a blue circle", 3)
    assert [h["corrected"] for h in sub["history"]] == ["a blue circle", "a big blue circle", "a blue circle"]
    queue = client.predict("team", api_name="/review_queue")
    rows = {row[-1]: row for row in queue["data"]}                            # the task, with both texts
    assert rows[saved][1:4] == ["ana", "a blue circle", "approved"]
    assert [r[1:4] for k, r in rows.items() if k != saved] == [["ben", "a blue circle", "submitted"]]


def test_bad_input_is_a_clear_message(client):
    with pytest.raises(AppError, match="pick a campaign first"):
        client.predict("", "ana", api_name="/next_task")
    with pytest.raises(AppError, match="no campaign named 'nope'"):
        client.predict("nope", "ana", api_name="/next_task")
    with pytest.raises(AppError, match="no task is open"):
        client.predict("team", "ana", "", "text", api_name="/submit_task")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict("x", "burn", "rita", "", 1, api_name="/review_task")
    with pytest.raises(AppError, match="no campaign submission"):
        client.predict("x", "approve", "rita", "", 1, api_name="/review_task")


def test_a_restarted_app_continues_where_it_was(app, data_dir):
    with open_store(str(data_dir / "corrections.db"), sync=None) as store:
        held = store.next_task("team", "cara")
        before = store.campaign_status("team")
    service = Service(preloaded=tiny_models())              # a new process's app on the same data folder
    demo, url = serve(service)
    try:
        c = Client(url, verbose=False)
        assert c.predict("team", api_name="/campaign_status") == before
        out = c.predict("team", "cara", api_name="/next_task")
        assert task_of(out)["id"] == held.id                    # cara's lease survived the restart
    finally:
        demo.close()
        service.close()


def test_a_word_map_for_the_task_image(client):
    out = client.predict("team", "dan", api_name="/next_task")
    task = task_of(out)
    assert out[9] is None and out[10] is None                   # a new task clears the last map
    path = client.predict("team", out[0], 1, api_name="/annotate_map")   # the token "red"
    from PIL import Image

    with Image.open(path) as im:
        assert im.size == (16, 16)
    assert task["tokens"][1] == "red"


def test_create_a_campaign_from_a_zip_upload(client, tmp_path):
    import io
    import zipfile

    from gradio_client import handle_file
    from PIL import Image

    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(3):
            buf = io.BytesIO()
            Image.fromarray(make_image(50 + i, 24)).save(buf, format="PNG")
            z.writestr(f"set/{i}.png", buf.getvalue())
        z.writestr("set/notes.txt", "ignored")
        z.writestr("set/broken.png", b"not an image")
    body, _ = client.predict([handle_file(str(archive))], "zipped", "shapes-cross", "caption", 2, "uncertainty",
                             False, "", "fix the colours", api_name="/create_campaign")
    assert (body["added"], body["resumed"], [u["image"] for u in body["unreadable"]]) == (3, False, ["set/broken.png"])
    out = client.predict("zipped", "ana", api_name="/next_task")
    assert task_of(out)["token_probs"] and "fix the colours" in out[8]      # pre-annotated by the model
    body, _ = client.predict([handle_file(str(archive))], "zipped", "shapes-cross", "caption", 2, "uncertainty",
                             False, "", "", api_name="/create_campaign")
    assert (body["added"], body["skipped"], body["resumed"]) == (0, 3, True)
    with pytest.raises(AppError, match="upload images"):
        client.predict([], "x", "shapes-cross", "caption", 1, "random", False, "", "", api_name="/create_campaign")


def test_agreement_plot_has_two_bars_per_annotator():
    from mmdemo.ui.annotate import agreement_plot

    status = {"agreement": {"word_similarity": 0.7},
              "annotators": [{"annotator": "ana", "agreement": 0.8, "mean_edit_rate": 0.2},
                             {"annotator": "ben", "agreement": None, "mean_edit_rate": 0.5}]}
    ax = agreement_plot(status).axes[0]
    assert [round(p.get_height(), 2) for p in ax.patches] == [0.8, 0.0, 0.2, 0.5]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ana", "ben"]


def test_dataset_rows_can_be_edited_and_restored(client, data_dir):
    with open_store(str(data_dir / "corrections.db"), sync=None) as store:
        cid = store.add(make_image(77), "a red circle", "a blue circle", model="shapes-cross", annotator="ana")
    out, text = client.predict(cid, "a big blue circle", "ben", api_name="/edit_correction")
    assert (out["version"], out["corrected"], out["annotator"], text) == (2, "a big blue circle", "ben",
                                                                        "a big blue circle")
    out, text = client.predict(cid, 1, "ben", api_name="/restore_version")
    assert (out["version"], text) == (3, "a blue circle")
    assert [v["corrected"] for v in out["history"]] == ["a blue circle", "a big blue circle", "a blue circle"]
    with pytest.raises(AppError, match="no version 7"):
        client.predict(cid, 7, "ben", api_name="/restore_version")
