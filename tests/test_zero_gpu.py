"""The service's GPU calls the way ZeroGPU makes them: `spaces.GPU` pickles the arguments, runs the function in a
forked worker, and pickles the result back. A stand-in `spaces` module does exactly that here, for an embedded
model and a tiny hub model loaded from a `save_pretrained` folder."""
from __future__ import annotations

import multiprocessing
import pickle
import sys
import types

import pytest
import torch

from mmdemo.models.base import Decoding, Target
from mmdemo.service import Service, gpu
from tiny_hub import save_blip_caption
from helpers import example, tiny_models

CALLS: list[tuple[str, dict]] = []


def _child(conn, fn_bytes: bytes, args_bytes: bytes) -> None:
    fn = pickle.loads(fn_bytes)
    args, kwargs = pickle.loads(args_bytes)
    try:
        conn.send_bytes(pickle.dumps(("ok", fn(*args, **kwargs))))
    except Exception as e:  # pragma: no cover - reported by the parent
        conn.send_bytes(pickle.dumps(("error", repr(e))))
    conn.close()


def fake_gpu(fn, duration=None):
    """spaces.GPU as ZeroGPU runs it: arguments and result through pickle, the call in a forked child."""
    def run(*args, **kwargs):
        CALLS.append((fn.__name__, {"duration": duration}))
        payload = pickle.dumps((args, kwargs))                    # fails on modules, locks, open files …
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(child, pickle.dumps(fn), payload))
        proc.start()
        status, value = pickle.loads(parent.recv_bytes())
        proc.join(60)
        assert status == "ok", value
        return value
    return run


@pytest.fixture
def zero_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=fake_gpu))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(gpu, "_GPU", None)
    monkeypatch.setattr(gpu, "on_gpu", lambda model: True)       # as if the model sat on a CUDA device
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                     # a forked child must not inherit a busy pool
    CALLS.clear()
    yield CALLS
    torch.set_num_threads(threads)


def test_every_gpu_call_of_an_embedded_model_survives_pickling(zero_gpu):
    service = Service(preloaded=tiny_models())
    name = service.default_model()
    path = example(1)["path"]
    cap = service.caption(path, name, {"strategy": "beam", "max_new_tokens": 5, "beams": 2})
    ans = service.ask(path, "how many objects are there?", name, top_k=3)
    exp = service.explain(path, Target("token", cap.caption or "a", token=0), name, method="ig")
    share = service.modality(path, Target("answer", ans.answer, question="how many objects are there?"), name)
    sheet = list(service.explain_tokens(path, "a small red circle", name, "attention"))
    direct = service.model(name).caption([_image(path)], Decoding("beam", 5, beams=2))[0]
    assert cap.caption == direct.text
    assert len(ans.top_k) == 3 and exp.grid.shape == tuple(service.model(name).info.patch_grid)
    assert share["image_share"] + share["text_share"] == pytest.approx(1.0)
    assert [m.token for m in sheet] == ["a", "small", "red", "circle"] and sheet[3].explanation.target.token == 3
    assert [c[0] for c in zero_gpu] == ["run_caption", "run_answer", "run_explain", "run_modality", "run_sheet"]
    assert all(c[1]["duration"] == gpu.DURATION[k] for c, k in zip(zero_gpu, ("caption", "answer", "explain",
                                                                                 "modality", "sheet")))


def test_a_tiny_hub_model_from_a_folder_too(zero_gpu, tmp_path):
    import mmdemo

    folder = tmp_path / "blip"
    save_blip_caption(folder)
    model = mmdemo.load(str(folder))
    service = Service(preloaded={"blip": model})
    out = service.caption(example(2)["path"], "blip", {"max_new_tokens": 4})
    direct = model.caption([_image(example(2)["path"])], Decoding(max_new_tokens=4))[0]
    assert out.caption == direct.text and [t for t, _ in out.tokens] == [t for t, _ in direct.tokens]
    exp = service.explain(example(2)["path"], Target("caption", "a red cat"), "blip", method="relevance")
    assert exp.grid.shape == tuple(model.info.patch_grid)
    sheet = list(service.explain_tokens(example(2)["path"], "a red cat", "blip", "ig", steps=4))
    assert [m.index for m in sheet] == list(range(sheet[0].count)) and sheet[0].count >= 3
    assert [c[0] for c in zero_gpu] == ["run_caption", "run_explain", "run_sheet"]


def test_models_on_the_cpu_are_called_directly(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=lambda fn, duration=None: pytest.fail(
        "a CPU model went through spaces.GPU")))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(gpu, "_GPU", None)
    service = Service(preloaded=tiny_models())
    assert service.caption(example(1)["path"]).caption is not None


def _image(path):
    from mmdemo.images import load_image

    return load_image(path)
