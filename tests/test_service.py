"""The service the UI calls: model cache, captions and answers, bad input → clear errors, store failures contained."""
from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from mmdemo import Target
from mmdemo.errors import ImageError, InputError, MmdemoError, StoreError, UnknownModelError
from mmdemo.models.base import Decoding
from mmdemo.service import MAX_QUESTION_CHARS, AnswerResult, CaptionResult, Service
from helpers import EXAMPLES, example, huge_png, tiny_model



# -------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDEMO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MMDEMO_DATABASE_URL", raising=False)
    monkeypatch.delenv("MMDEMO_MODELS", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)


@pytest.fixture(scope="module")
def service():
    return Service(preloaded={"shapes-cross": tiny_model()})


def test_examples_are_in_the_tree_with_their_questions():
    rows = json.loads((EXAMPLES / "examples.json").read_text())
    assert 5 <= len(rows) <= 8
    sizes = set()
    for row in rows:
        image = Image.open(EXAMPLES / row["file"])
        assert image.size == (row["width"], row["height"])
        sizes.add(image.size)
        assert row["question"] and row["answer"] and row["caption"].startswith("a ")
        assert 1 <= len(row["objects"]) <= 4
    assert any(w != h for w, h in sizes), "one example is not square"


def test_examples_are_reproducible(tmp_path):
    from mmdemo.world.examples import write_examples

    rows = write_examples(tmp_path)
    for row in rows:
        assert (tmp_path / row["file"]).read_bytes() == (EXAMPLES / row["file"]).read_bytes()


def test_caption_returns_text_and_token_probabilities(service):
    result = service.caption(example(1)["path"], "shapes-cross")
    assert isinstance(result, CaptionResult)
    assert result.model == "shapes-cross"
    assert isinstance(result.caption, str)
    assert all(isinstance(t, str) and 0.0 <= p <= 1.0 for t, p in result.tokens)
    assert result.seconds >= 0 and len(result.image_hash) == 64
    payload = result.to_dict()
    assert set(payload) >= {"model", "caption", "tokens", "seconds"}
    json.dumps(payload)


@pytest.mark.parametrize("source", ["path", "pil", "numpy", "bytes"])
def test_every_kind_of_image_goes_through_intake(service, source):
    path = example(2)["path"]
    raw = {"path": path, "pil": Image.open(path), "numpy": np.asarray(Image.open(path).convert("RGB")),
           "bytes": open(path, "rb").read()}[source]
    question = "how many objects are there?"
    assert service.ask(raw, question).image_hash == service.ask(path, question).image_hash


@pytest.mark.parametrize("strategy, extra", [("greedy", {}), ("beam", {"beams": 3}),
                                             ("nucleus", {"top_p": 0.8, "seed": 1})])
def test_decoding_strategies(service, strategy, extra):
    result = service.caption(example(1)["path"], decoding=Decoding(strategy=strategy, max_new_tokens=6, **extra))
    assert len(result.tokens) <= 6
    assert result.decoding == {"strategy": strategy, "max_new_tokens": 6, **extra,
                               **({"temperature": 1.0} if strategy == "nucleus" else {})}


def test_nucleus_with_a_seed_is_repeatable(service):
    a = service.caption(example(3)["path"], decoding={"strategy": "nucleus", "top_p": 0.95, "seed": 7})
    b = service.caption(example(3)["path"], decoding={"strategy": "nucleus", "top_p": 0.95, "seed": 7})
    assert a.caption == b.caption


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "sideways"}, "strategy"),
    ({"max_new_tokens": 0}, "max new tokens"),
    ({"max_new_tokens": 1000}, "max new tokens"),
    ({"max_new_tokens": 2.5}, "whole number"),
    ({"strategy": "beam", "beams": 50}, "beams"),
    ({"max_tokens": 5}, "unknown decoding setting max_tokens"),
    ({"strategy": "nucleus", "top_p": float("nan")}, "top-p"),
    ({"colour": "red"}, "unknown decoding setting"),
])
def test_bad_decoding_settings(service, kwargs, message):
    with pytest.raises(InputError, match=message):
        service.caption(example(1)["path"], decoding=kwargs)


def test_decoding_keeps_only_the_settings_of_its_strategy():
    assert Decoding("beam", 10, beams=4).to_dict() == {"strategy": "beam", "max_new_tokens": 10, "beams": 4}
    assert Decoding("nucleus", 5, top_p=0.5, temperature=0.7, seed=-1).to_dict() == \
        {"strategy": "nucleus", "max_new_tokens": 5, "top_p": 0.5, "temperature": 0.7, "seed": None}
    assert Decoding.from_dict(Decoding("beam").to_dict()) == Decoding("beam")


def test_ask_returns_answer_and_top_k(service):
    result = service.ask(example(1)["path"], "  What color is the square?  ", "shapes-cross", top_k=3)
    assert isinstance(result, AnswerResult)
    assert result.question == "What color is the square?"
    assert len(result.top_k) == 3
    assert result.answer == result.top_k[0][0]
    probs = [p for _, p in result.top_k]
    assert probs == sorted(probs, reverse=True) and 0 <= probs[-1] <= probs[0] <= 1
    assert result.prob == pytest.approx(probs[0])


@pytest.mark.parametrize("question, message", [
    ("", "empty"), ("   \n\t ", "empty"), (None, "empty"), (42, "text"),
    ("x" * 10_000, "10,000 characters"), ("y" * (MAX_QUESTION_CHARS + 1), "limit is 500"),
])
def test_bad_questions(service, question, message):
    with pytest.raises(InputError, match=message):
        service.ask(example(1)["path"], question)


def test_a_question_at_the_limit_is_accepted(service):
    service.ask(example(1)["path"], "what " * (MAX_QUESTION_CHARS // 5))


@pytest.mark.parametrize("top_k", [0, 21, "many", None])
def test_bad_top_k(service, top_k):
    with pytest.raises(InputError, match="top-k"):
        service.ask(example(1)["path"], "how many objects are there?", top_k=top_k)


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, format="JPEG")
    return buf.getvalue()[:300]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not an image at all"), "not an image"),
    (lambda p: p.write_bytes(_truncated_jpeg()), "truncated or corrupt"),
    (lambda p: p.write_bytes(huge_png()), "20000×20000"),
    (lambda p: p.write_bytes(b""), "empty"),
])
def test_bad_images_give_clear_errors(service, tmp_path, make, message):
    path = tmp_path / "upload.png"
    make(path)
    for call in (lambda: service.caption(str(path)), lambda: service.ask(str(path), "how many objects are there?")):
        with pytest.raises(ImageError, match=message):
            call()


def test_no_image(service):
    with pytest.raises(ImageError, match="no image"):
        service.caption(None)


def test_unknown_and_unoffered_models(service, tmp_path):
    with pytest.raises(UnknownModelError, match="not offered here.*shapes-cross"):
        service.caption(example(1)["path"], "no-such-model")
    with pytest.raises(UnknownModelError, match="not offered"):  # a folder named by a request is never opened
        service.caption(example(1)["path"], str(tmp_path))
    with pytest.raises(UnknownModelError, match="not offered"):  # nor a hub id
        service.caption(example(1)["path"], "Salesforce/blip-image-captioning-base")


def test_models_offers_preloaded_and_hides_hub_models_off_spaces(service, monkeypatch):
    names = [c.name for c in service.models()]
    assert names[0] == "shapes-cross"
    assert not any(n.startswith(("blip", "vilt", "git", "vit-")) for n in names)
    assert service.default_model() == "shapes-cross"
    assert service.default_model("vqa") == "shapes-cross"


def test_knows_says_what_the_model_can_see(service):
    assert "shapes" in service.knows("shapes-cross")


def test_models_load_once_even_when_asked_concurrently(monkeypatch):
    calls = []
    gate = threading.Event()

    def loader(name):
        calls.append(name)
        gate.wait(5)
        return tiny_model(name)

    svc = Service(loader=loader)
    monkeypatch.setattr(svc, "models", lambda task=None: [type("C", (), {"name": "shapes-early"})()])
    got = []
    threads = [threading.Thread(target=lambda: got.append(svc.model("shapes-early"))) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert calls == ["shapes-early"]
    assert len(got) == 4 and all(m is got[0] for m in got)


def test_concurrent_requests_on_one_model(service):
    errors = []

    def work(i):
        try:
            service.ask(example(1 + i % 6)["path"], "how many objects are there?")
            service.caption(example(1 + i % 6)["path"], decoding={"max_new_tokens": 8})
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


# --- corrections ----------------------------------------------------------------------------------
def test_save_correction_and_list_it(tmp_path):
    pytest.importorskip("mmdemo.store")
    svc = Service(preloaded={"shapes-cross": tiny_model()}, store_url=str(tmp_path / "c.db"))
    saved = svc.save_correction(example(1)["path"], "a small red circle",
                                "a small red <script>alert(1)</script> square",
                                model_name="shapes-cross", annotator="ana", decoding={"max_tokens": 24})
    assert saved.count == 1
    assert saved.diff == [("equal", "a small red"), ("delete", "circle"),
                          ("insert", "<script>alert(1)</script> square")]
    row = svc.corrections()[0]
    assert row.corrected == "a small red <script>alert(1)</script> square"   # kept verbatim, as text
    assert row.annotator == "ana" and row.model == "shapes-cross"
    assert svc.stats()["corrections"] == 1
    path = svc.export("csv")
    assert "<script>" in open(path, encoding="utf-8").read()
    assert str(tmp_path) not in path       # exports go to a fresh temporary folder, not the data folder
    svc.close()


def test_vqa_correction_needs_a_question(tmp_path):
    pytest.importorskip("mmdemo.store")
    svc = Service(preloaded={"shapes-cross": tiny_model()}, store_url=str(tmp_path / "c.db"))
    with pytest.raises(InputError, match="question is empty"):
        svc.save_correction(example(1)["path"], "blue", "red", model_name="shapes-cross", task="vqa")
    with pytest.raises(InputError, match="correction is empty"):
        svc.save_correction(example(1)["path"], "blue", "  ", model_name="shapes-cross")
    svc.close()


def test_a_broken_store_fails_only_the_store_calls(tmp_path):
    pytest.importorskip("mmdemo.store")
    folder = tmp_path / "db-is-a-folder.db"
    folder.mkdir()
    svc = Service(preloaded={"shapes-cross": tiny_model()}, store_url=str(folder))
    with pytest.raises(StoreError):
        svc.save_correction(example(1)["path"], "a", "b", model_name="shapes-cross")
    with pytest.raises(StoreError):
        svc.stats()
    assert svc.caption(example(1)["path"]).caption is not None          # captioning goes on
    assert svc.ask(example(1)["path"], "how many objects are there?").answer


def test_bad_export_format(tmp_path):
    pytest.importorskip("mmdemo.store")
    svc = Service(preloaded={"shapes-cross": tiny_model()}, store_url=str(tmp_path / "c.db"))
    with pytest.raises(InputError, match="csv"):
        svc.export("xlsx")


# --- explanations -----------------------------------------------------------------------------------
def test_explain_or_a_clear_error(service):
    target = Target("answer", "red", question="what color is the square?")
    try:
        import mmdemo.explain as engine
        has_engine = hasattr(engine, "explain")
    except ImportError:
        has_engine = False
    if not has_engine:
        with pytest.raises(MmdemoError, match="explanations are not available"):
            service.explain(example(1)["path"], target)
        return
    methods = service.methods("shapes-cross")
    assert "attention" in methods
    result = service.explain(example(1)["path"], target, "shapes-cross", method="attention")
    assert result.upsampled.shape == (256, 256)
    assert np.isfinite(np.asarray(result.grid)).all()
    assert service.explain(example(1)["path"], target, "shapes-cross", method="attention") is result  # cached
    shares = service.modality(example(1)["path"], target, "shapes-cross")
    assert shares["image_share"] + shares["text_share"] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(InputError, match="does not work"):
        service.explain(example(1)["path"], target, "shapes-cross", method="astrology")
    with pytest.raises(InputError, match="question is empty"):
        service.explain(example(1)["path"], Target("answer", "red", question=" "), "shapes-cross")


# --- model choice and decoding names ----------------------------------------------------------------
def test_hub_models_are_offered_only_on_a_space_or_when_named(monkeypatch):
    from mmdemo.models.registry import ModelEntry
    import mmdemo.service.pool as service_module

    entries = [ModelEntry("shapes-cross", ("caption", "vqa"), "cross", "embedded", "x:y", lambda: True),
               ModelEntry("blip-caption", ("caption",), "cross", "hub", "mmdemo.models.hub._factory:load_model",
                          lambda: True, remote=True),
               ModelEntry("shapes-late", ("caption", "vqa"), "late", "embedded", "x:y", lambda: False)]
    monkeypatch.setattr(service_module, "list_models", lambda: entries)
    svc = Service()
    assert [c.name for c in svc.models()] == ["shapes-cross"]            # no weights → not offered
    monkeypatch.setenv("MMDEMO_MODELS", "blip-caption")
    assert [c.name for c in svc.models()] == ["shapes-cross", "blip-caption"]
    assert [c.name for c in svc.models("vqa")] == ["shapes-cross"]
    monkeypatch.delenv("MMDEMO_MODELS")
    monkeypatch.setenv("SPACE_ID", "someone/mmdemo")
    assert [c.name for c in svc.models()] == ["shapes-cross", "blip-caption"]


def test_a_space_preloads_its_hub_models_and_leaves_embedded_ones_lazy(monkeypatch):
    """ZeroGPU wants models loaded in the main process at start-up; the embedded ones load on first use."""
    from mmdemo.models.registry import ModelEntry
    import mmdemo.service.pool as pool_module

    entries = [ModelEntry("shapes-cross", ("caption", "vqa"), "cross", "embedded", "x:y", lambda: True),
               ModelEntry("blip-caption", ("caption",), "cross", "hub", "x:y", lambda: True, remote=True)]
    monkeypatch.setattr(pool_module, "list_models", lambda: entries)
    monkeypatch.setattr(pool_module, "resolve", lambda name: next(e for e in entries if e.name == name))
    monkeypatch.setenv("SPACE_ID", "someone/mmdemo")
    loaded = []
    svc = Service(loader=lambda name: loaded.append(name) or tiny_model(name))
    assert svc.preload() == ["blip-caption"] and loaded == ["blip-caption"]
    svc.model("shapes-cross")
    assert loaded == ["blip-caption", "shapes-cross"]


def test_decoding_reaches_the_model_as_one_dataclass(monkeypatch):
    """Every family's caption takes a Decoding; the service records only the settings the model honours."""
    from mmdemo.models.base import Caption

    class HubLike:
        info = tiny_model().info.__class__(name="hub-like", tasks=("caption",), fusion="cross",
                                           input_size=(8, 8), patch_grid=(1, 1))
        honours = ("strategy", "max_new_tokens", "top_p")
        seen = None

        def caption(self, images, decoding=None):
            HubLike.seen = decoding
            return [Caption("a cat", [("a", 0.9), ("cat", 0.8)])]

    svc = Service(preloaded={"hub-like": HubLike()})
    out = svc.caption(example(1)["path"], "hub-like", {"strategy": "nucleus", "max_new_tokens": 7, "top_p": 0.5,
                                                       "seed": 3})
    assert HubLike.seen == Decoding("nucleus", 7, top_p=0.5, seed=3)
    assert out.decoding == {"strategy": "nucleus", "max_new_tokens": 7, "top_p": 0.5}
    with pytest.raises(InputError, match="does not answer questions"):
        svc.ask(example(1)["path"], "what is this?", "hub-like")
