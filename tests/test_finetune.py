"""Fine-tuning on corrections (`mmdemo finetune`), the folders it writes, and caption metrics (`eval-captions`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import tiny_model

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"model", "out", "n_train", "n_eval", "steps", "seconds", "before", "after"}


def run(*args, data: Path, env: dict | None = None, timeout: int = 300):
    full = {**os.environ, "PYTHONPATH": str(ROOT), "MMDEMO_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "mmdemo", *args], capture_output=True, text=True, timeout=timeout,
                          env=full, cwd=ROOT)


def one_line_error(out) -> str:
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def noise_image(i: int, size: int = 32) -> Image.Image:
    return Image.fromarray(np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny-shapes"
    tiny_model().save(folder, {"note": "tiny random model for tests"})
    return folder


def store_at(data: Path):
    from mmdemo.store import open_store

    return open_store(f"sqlite:///{data / 'corrections.db'}")


# --- model folders load everywhere a model does ---------------------------------------------------------------------
def test_a_shapes_folder_resolves_and_is_offered_by_mmdemo_models(shapes_folder, monkeypatch):
    import mmdemo
    from mmdemo.models.registry import resolve
    from mmdemo.service.pool import ModelPool

    entry = resolve(str(shapes_folder))
    assert entry.domain == "shapes" and entry.factory.endswith(":load_folder") and entry.available()
    model = mmdemo.load(str(shapes_folder))
    assert model.info.name == str(shapes_folder) and len(model.info.revision) == 12
    monkeypatch.setenv("MMDEMO_MODELS", str(shapes_folder))
    assert str(shapes_folder) in [c.name for c in ModelPool().models("caption")]


def test_score_is_differentiable_with_respect_to_the_weights():
    from mmdemo.models.base import Target

    model = tiny_model()
    named = model.trainable_parameters()
    inputs = model.prepare([noise_image(0)], [Target("caption", "a small red circle", end=True)])
    (-model.score(inputs)).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for _, p in named)
    plain = model.score(model.prepare([noise_image(0)], [Target("caption", "a small red circle")]))
    ended = model.score(inputs)
    assert float(ended.detach()) < float(plain.detach())             # one more log-probability (the end token) is added


# --- selecting corrections ------------------------------------------------------------------------------------------
def test_campaign_and_approved_only_select_the_right_rows(tmp_path):
    from mmdemo.train.finetune import corrections_from_store

    store = store_at(tmp_path)
    store.add(noise_image(9), "x", "loose correction", model="m")
    store.create_campaign("spring", model="m")
    store.add_tasks("spring", [{"image": noise_image(i), "model_output": f"out {i}"} for i in range(3)])
    ids = []
    for i in range(3):
        task = store.next_task("spring", "ana")
        ids.append(store.submit_task(task.id, f"text {i}", "ana"))
    store.review_task(ids[0], "approve", "rev")
    store.review_task(ids[1], "reject", "rev")
    store.create_campaign("autumn", model="m")
    store.add_tasks("autumn", [{"image": noise_image(7), "model_output": "o"}])
    other = store.submit_task(store.next_task("autumn", "ben").id, "autumn text", "ben")
    store.review_task(other, "approve", "rev")

    texts = lambda d: sorted(e.text for e in d.examples)  # noqa: E731
    assert texts(corrections_from_store(store)) == ["autumn text", "loose correction", "text 0", "text 1", "text 2"]
    assert texts(corrections_from_store(store, campaign="spring")) == ["text 0", "text 2"]   # rejected left out
    assert texts(corrections_from_store(store, campaign="spring", approved_only=True)) == ["text 0"]
    assert texts(corrections_from_store(store, approved_only=True)) == ["autumn text", "text 0"]
    store.close()


def test_the_split_is_seeded_and_keeps_an_images_corrections_together():
    from mmdemo.train.finetune import Example, split

    examples = [Example(None, f"t{i}", group=f"g{i // 2}") for i in range(20)]
    train, held = split(examples, 0.2, seed=3)
    assert (train, held) == split(examples, 0.2, seed=3)
    assert len(held) == 4 and not {e.group for e in train} & {e.group for e in held}
    assert split(examples[:2], 0.2, seed=0)[1] == []             # one image: nothing to hold out


# --- bad input: exit 2, one line ------------------------------------------------------------------------------------
def test_no_corrections_exits_2(shapes_folder, tmp_path):
    store_at(tmp_path).close()
    line = one_line_error(run("finetune", "--model", str(shapes_folder), "--from-store", "--out",
                              str(tmp_path / "out"), "--json", data=tmp_path))
    assert "no corrections" in line
    assert not (tmp_path / "out").exists()


def test_unknown_campaign_exits_2(shapes_folder, tmp_path):
    store_at(tmp_path).close()
    line = one_line_error(run("finetune", "--model", str(shapes_folder), "--from-store", "--campaign", "nope",
                              "--out", str(tmp_path / "out"), data=tmp_path))
    assert "nope" in line


def test_a_model_that_cannot_be_trained_exits_2(tmp_path):
    from tiny_hub import save_vilt

    save_vilt(tmp_path / "vilt")
    store = store_at(tmp_path)
    store.add(noise_image(0), "x", "a red cat", model="m")
    store.close()
    line = one_line_error(run("finetune", "--model", str(tmp_path / "vilt"), "--from-store", "--out",
                              str(tmp_path / "out"), data=tmp_path))
    assert "cannot be fine-tuned" in line


def test_an_existing_out_folder_is_refused(shapes_folder, tmp_path):
    store = store_at(tmp_path)
    store.add(noise_image(0), "x", "a small red circle", model="m")
    store.close()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    line = one_line_error(run("finetune", "--model", str(shapes_folder), "--from-store", "--out",
                              str(tmp_path / "out"), data=tmp_path))
    assert "already exists" in line and (tmp_path / "out" / "keep.txt").read_text() == "mine"


# --- training through the CLI: shapes, BLIP, GIT --------------------------------------------------------------------
def _build(kind: str, folder: Path, shapes_folder: Path) -> tuple[str, str]:
    """(model path, a corrected caption its tokenizer can write)."""
    if kind == "shapes":
        return str(shapes_folder), "a large blue star to the left of a small red circle"
    from tiny_hub import BUILDERS

    BUILDERS[kind](folder)
    return str(folder), "a red cat sits on the dog"


@pytest.mark.slow
@pytest.mark.parametrize("kind, steps, lr", [("shapes", 60, 3e-3), ("blip-caption", 40, 2e-3), ("git", 40, 2e-3)])
def test_finetune_cli_learns_a_corrected_caption(kind, steps, lr, shapes_folder, tmp_path):
    model, text = _build(kind, tmp_path / "model", shapes_folder)
    image = noise_image(1)
    store = store_at(tmp_path)
    for i in range(3):                  # the same image corrected three times (one image: nothing held out)
        store.add(image, "what the model said", text, model=model, annotator=f"a{i}")
    store.close()
    out = tmp_path / "tuned"
    res = run("finetune", "--model", model, "--from-store", "--out", str(out), "--steps", str(steps), "--lr",
              str(lr), "--batch", "4", "--replay", "0", "--original-scenes", "0", "--seed", "1", "--json",
              data=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert set(report) == KEYS
    assert (report["model"], report["out"], report["n_train"], report["n_eval"], report["steps"]) == \
           (model, str(out), 3, 0, steps)
    assert report["after"]["train_loss"] < 0.5 * report["before"]["train_loss"]
    assert (out / "README.md").read_text().startswith("# tuned")
    png = tmp_path / "image.png"
    image.save(png)
    cap = run("caption", str(png), "--model", str(out), "--json", data=tmp_path)
    assert cap.returncode == 0, cap.stderr[-2000:]
    assert json.loads(cap.stdout)["caption"] == text


@pytest.mark.slow
def test_finetune_holds_out_images_and_measures_the_original_world(shapes_folder, tmp_path):
    from mmdemo.train.finetune import FinetuneSettings, corrections_from_store, finetune
    from mmdemo.world.language import caption
    from mmdemo.world.render import render
    from mmdemo.world.scene import sample_scene

    store = store_at(tmp_path)
    for i in range(5):
        scene = sample_scene(i, 128)
        store.add(render(scene), "x", caption(scene), model="m")
    data = corrections_from_store(store)
    store.close()
    report = finetune(str(shapes_folder), data, tmp_path / "out",
                      FinetuneSettings(steps=4, batch=2, eval_share=0.4, original_scenes=3, checkpoint_every=2),
                      progress=False)
    assert (report["n_train"], report["n_eval"]) == (3, 2)
    for side in ("before", "after"):
        m = report[side]
        assert m["n"] == 2 and 0 <= m["exact"] <= 1 and 0 <= m["mention_f1"] <= 1 and m["cider_d"] >= 0
        assert set(m["original"]) == {"scenes", "caption_exact", "mention_f1", "vqa_accuracy"}
    saved = json.loads((tmp_path / "out" / "finetune.json").read_text())
    # replay 1.0 (the default): one world scene per correction
    assert saved["finetune"]["corrections"] == 5 and saved["finetune"]["replay_per_step"] == 2
    assert not (tmp_path / "out" / "finetune-checkpoint.pt").exists()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "original shapes world" in card and "5 corrections" in card


# --- caption metrics --------------------------------------------------------------------------------------------------
PREDICTIONS = ["a large red circle", "a small blue star to the left of a large red circle", "two green squares"]
REFERENCES = ["a large red circle", "a small blue star to the left of a small red circle", "a small green square"]


def test_caption_metrics_equal_hand_computed_values():
    import sacrebleu
    from pycocoevalcap.cider.cider import Cider

    from mmdemo.train.caption_metrics import caption_metrics

    m = caption_metrics(PREDICTIONS, REFERENCES, mentions=True)
    assert m["n"] == 3
    assert m["exact"] == pytest.approx(1 / 3)
    # mentions: 1/1; {small blue star, large red circle} vs {small blue star, small red circle}: P = R = 1/2; 0 of 1
    assert m["mention_f1"] == pytest.approx((1 + 0.5 + 0) / 3)
    # word edits: 0; "large" -> "small": 1; "two green squares" -> "a small green square": two -> a, + small,
    # squares -> square: 3
    assert m["edit_distance"] == pytest.approx((0 + 1 + 3) / 3)
    assert m["edit_rate"] == pytest.approx((0 + 1 / 12 + 3 / 4) / 3)
    assert m["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score)
    assert m["chrf"] == pytest.approx(sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score)
    cider, _ = Cider().compute_score({i: [r] for i, r in enumerate(REFERENCES)},
                                     {i: [p] for i, p in enumerate(PREDICTIONS)})
    assert m["cider_d"] == pytest.approx(cider)
    same = caption_metrics(REFERENCES, REFERENCES)
    assert (same["exact"], same["edit_distance"], same["mention_f1"]) == (1.0, 0.0, None)
    assert same["bleu"] == pytest.approx(100) and same["cider_d"] > m["cider_d"]


def test_eval_captions_cli_scores_given_captions(tmp_path):
    rows = [{"reference": r, "prediction": p} for p, r in zip(PREDICTIONS, REFERENCES)]
    (tmp_path / "refs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    res = run("eval-captions", "--input", str(tmp_path / "refs.jsonl"), "--mentions", "--json", data=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    from mmdemo.train.caption_metrics import caption_metrics

    assert report == {"model": None, **caption_metrics(PREDICTIONS, REFERENCES, mentions=True)}
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prediction": "x"}))
    assert "no reference" in one_line_error(run("eval-captions", "--input", str(tmp_path / "bad.jsonl"),
                                                data=tmp_path))


def test_eval_captions_cli_runs_a_model_on_the_store(shapes_folder, tmp_path):
    store = store_at(tmp_path)
    store.create_campaign("c", model="m")
    store.add_tasks("c", [{"image": noise_image(i), "model_output": "o"} for i in range(2)])
    for i in range(2):
        store.submit_task(store.next_task("c", "ana").id, f"a small red circle {i}", "ana")
    store.add(noise_image(5), "x", "outside the campaign", model="m")
    store.close()
    res = run("eval-captions", "--model", str(shapes_folder), "--from-store", "--campaign", "c", "--json",
              data=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["model"] == str(shapes_folder) and report["n"] == 2 and report["mention_f1"] is not None
    assert "nope" in one_line_error(run("eval-captions", "--model", str(shapes_folder), "--from-store",
                                        "--campaign", "nope", data=tmp_path))


# --- the app's service: a background run, admins only, the new model offered -------------------------------------
@pytest.mark.slow
def test_service_fine_tunes_a_campaign_in_the_background(shapes_folder, tmp_path, monkeypatch):
    import time

    from mmdemo.access import AccessError
    from mmdemo.service import Service

    monkeypatch.setenv("MMDEMO_DATA_DIR", str(tmp_path))
    service = Service(store_url=f"sqlite:///{tmp_path / 'corrections.db'}")
    store = service.store()
    store.create_campaign("c", model=str(shapes_folder))
    store.add_tasks("c", [{"image": noise_image(i), "model_output": "o"} for i in range(3)])
    for i in range(3):
        store.submit_task(store.next_task("c", "ana").id, "a small red circle", "ana")
    assert service.finetune_status() == {}
    monkeypatch.setenv("MMDEMO_OAUTH", "1")
    monkeypatch.setenv("MMDEMO_ADMINS", "boss")
    with pytest.raises(AccessError):
        service.start_finetune("c", user="eve", steps=2)
    job = service.start_finetune("c", user="boss", steps=3, original_scenes=2)
    assert job["state"] == "running" and job["steps"] == 3
    for _ in range(600):
        job = service.finetune_status(job["id"])
        if job["state"] != "running":
            break
        time.sleep(0.2)
    assert job["state"] == "done", job["error"]
    assert job["report"]["n_train"] + job["report"]["n_eval"] == 3
    assert job["out"] in [c.name for c in service.models("caption")]
    assert service.model(job["out"]).info.revision


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_weights(shapes_folder, tmp_path):
    from mmdemo.models.shapes.weights import revision
    from mmdemo.train.finetune import CHECKPOINT, FinetuneSettings, corrections_from_store, finetune

    store = store_at(tmp_path)
    for i in range(3):
        store.add(noise_image(i), "x", "a small red circle", model="m")
    data = corrections_from_store(store)
    store.close()
    s = FinetuneSettings(steps=4, batch=2, eval_share=0, replay=0.5, original_scenes=0, checkpoint_every=2)
    finetune(str(shapes_folder), data, tmp_path / "straight", s, progress=False)

    def stop_at_3(stage, step, steps):
        if stage == "training" and step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(str(shapes_folder), data, tmp_path / "resumed", s, progress=False, on_step=stop_at_3)
    assert [p.name for p in (tmp_path / "resumed").iterdir()] == [CHECKPOINT]
    finetune(str(shapes_folder), data, tmp_path / "resumed", s, progress=False)
    assert revision(tmp_path / "resumed") == revision(tmp_path / "straight")


def test_the_shipped_outline_model_reads_outlines_better_than_shapes_cross():
    import mmdemo
    from mmdemo.config import ASSETS
    from mmdemo.train.caption_metrics import caption_metrics
    from mmdemo.world.language import caption
    from mmdemo.world.styles import styled_view

    folder = ASSETS / "models" / "shapes-cross-outline"
    if not (folder / "model.safetensors").is_file() or not (ASSETS / "models" / "shapes-cross" /
                                                             "model.safetensors").is_file():
        pytest.skip("the shipped shapes models are not here")
    items = [styled_view(np.random.default_rng([21, i]), "outline") for i in range(12)]   # the study's held-out seeds
    truth = [caption(scene) for scene, _ in items]
    f1 = {name: caption_metrics([c.text for c in mmdemo.load(name).caption([im for _, im in items])], truth,
                                mentions=True)["mention_f1"] for name in ("shapes-cross", str(folder))}
    assert f1[str(folder)] > f1["shapes-cross"] + 0.3


@pytest.mark.slow
def test_vqa_corrections_train_the_answer_head_and_unknown_answers_are_left_out(shapes_folder, tmp_path):
    from mmdemo.models.base import Target
    from mmdemo.models.registry import load
    from mmdemo.train.finetune import FinetuneSettings, corrections_from_store, finetune

    store = store_at(tmp_path)
    image = noise_image(3)
    store.add(image, "no", "yes", model="m", task="vqa", question="is there a red circle?")
    store.add(image, "no", "banana", model="m", task="vqa", question="what is it?")      # not an answer it knows
    store.add(image, "x", "a small red circle", model="m")
    data = corrections_from_store(store)
    store.close()
    assert sorted((e.question or "", e.text) for e in data.examples) == [
        ("", "a small red circle"), ("is there a red circle?", "yes"), ("what is it?", "banana")]
    target = Target("answer", "yes", question="is there a red circle?")
    before = float(load(str(shapes_folder)).score(load(str(shapes_folder)).prepare([image], [target])).detach())
    report = finetune(str(shapes_folder), data, tmp_path / "out", FinetuneSettings(
        steps=30, batch=2, lr=3e-3, eval_share=0, replay=0, original_scenes=0), progress=False)
    assert report["n_train"] == 2
    saved = json.loads((tmp_path / "out" / "finetune.json").read_text())["finetune"]
    assert saved["skipped"] == {"not scorable by this model": 1}
    tuned = load(str(tmp_path / "out"))
    assert float(tuned.score(tuned.prepare([image], [target])).detach()) > before
    assert tuned.answer([image], ["is there a red circle?"])[0].answer == "yes"


def test_eval_captions_cli_captions_the_images_of_a_csv(shapes_folder, tmp_path):
    for i in range(2):
        noise_image(i).save(tmp_path / f"im{i}.png")
    (tmp_path / "refs.csv").write_text("image,caption\nim0.png,a small red circle\nim1.png,a large blue star\n")
    res = run("eval-captions", "--model", str(shapes_folder), "--input", str(tmp_path / "refs.csv"), "--json",
              data=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["model"] == str(shapes_folder) and report["n"] == 2 and report["mention_f1"] is not None
    (tmp_path / "missing.csv").write_text("image,caption\nnope.png,a small red circle\n")
    one_line_error(run("eval-captions", "--model", str(shapes_folder), "--input", str(tmp_path / "missing.csv"),
                       data=tmp_path))
