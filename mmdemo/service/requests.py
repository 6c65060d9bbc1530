"""One request each: caption, answer, explain, modality share, faithfulness. Input is checked here, once."""
from __future__ import annotations

import importlib
import time
from typing import Any, Iterator

from ..errors import InputError, MmdemoError
from ..images import ImageSource, content_hash, load_image
from ..models.base import Decoding, Target, whole_number
from . import gpu
from .pool import ModelPool
from .results import AnswerResult, CaptionResult

MAX_QUESTION_CHARS = 500       # longest question accepted, after stripping
MAX_TOP_K = 20                 # most answers a top-k list may ask for
MAX_CAPTION_CHARS = 2_000      # longest caption an explanation may be asked for
FAITHFULNESS_STEPS = 16        # points on each deletion/insertion curve in `faithfulness`


class Requests:
    def __init__(self, pool: ModelPool):
        self.pool = pool

    def caption(self, image: ImageSource, model_name: str | None = None,
                decoding: Decoding | dict[str, Any] | None = None) -> CaptionResult:
        """Caption one image, generated as `decoding` says (a Decoding, or its fields as a dict; None: greedy)."""
        picture = load_image(image)
        settings = Decoding.from_dict(decoding)
        model = self.pool.with_task(model_name, "caption")
        started = time.perf_counter()
        with self.pool.lock(model.info.name):
            result = gpu.call("caption", model, picture, settings.to_dict())
        return CaptionResult(model.info.name, result.text, [(t, float(p)) for t, p in result.tokens],
                             round(time.perf_counter() - started, 4), _honoured(model, settings),
                             content_hash(picture),
                             tuple([(a, float(q)) for a, q in alts] for alts in result.alternatives))

    def ask(self, image: ImageSource, question: Any, model_name: str | None = None, top_k: int = 5) -> AnswerResult:
        """Answer one question about one image, with the `top_k` most likely answers."""
        picture = load_image(image)
        text = clean_question(question)
        k = whole_number(top_k, "top-k", 1, MAX_TOP_K)
        model = self.pool.with_task(model_name, "vqa")
        started = time.perf_counter()
        with self.pool.lock(model.info.name):
            result = gpu.call("answer", model, picture, text, k)
        return AnswerResult(model.info.name, text, result.answer, float(result.prob),
                            [(a, float(p)) for a, p in result.top_k], round(time.perf_counter() - started, 4),
                            content_hash(picture))

    def methods(self, model_name: str | None = None, output: str | None = None) -> list[str]:
        """Explanation methods this model offers ([] when the explain package is not installed). `output`: only
        methods that give an "image" map, or only those that score the "text" words."""
        engine = optional("mmdemo.explain")
        if engine is None:
            return []
        names = engine.available_methods(self.pool.model(model_name))
        return [n for n in names if output is None or engine.METHODS[n].output == output]

    def explain(self, image: ImageSource, target: Target, model_name: str | None = None, method: str = "attention",
                **options: Any) -> Any:
        """An `mmdemo.explain.Explanation` of `target` (cached by the engine per image, model, target, method,
        options)."""
        engine = require_explain()
        picture = load_image(image)
        target = clean_target(target)
        model = self.pool.model(model_name)
        methods = list(engine.available_methods(model))
        if not isinstance(method, str) or method not in methods:
            raise InputError(f"method {method!r} does not work with {model.info.name}; choose one of: "
                             f"{', '.join(methods) or 'none'}")
        with self.pool.lock(model.info.name):
            return gpu.call("explain", model, picture, target, method, dict(options))

    def explain_tokens(self, image: ImageSource, caption: Any, model_name: str | None = None,
                       method: str = "attention", **options: Any) -> Iterator[Any]:
        """`explain.sheet.TokenMap`s (index, count, token, explanation) of the caption's tokens, one map at a time: the model is locked per map, so other users'
        requests go between them, and a consumer that stops iterating stops the work. Arguments are checked before
        the first map. On a GPU (ZeroGPU included) the whole sheet is made in one GPU call, then handed out."""
        engine = require_explain()
        picture = load_image(image)
        text = clean_caption(caption)
        model = self.pool.model(model_name)
        methods = [m for m in engine.available_methods(model) if engine.METHODS[m].output == "image"]
        if not isinstance(method, str) or method not in methods:
            raise InputError(f"method {method!r} does not draw maps for {model.info.name}; choose one of: "
                             f"{', '.join(methods) or 'none'}")
        lock = self.pool.lock(model.info.name)
        if gpu.on_gpu(model):
            with lock:
                sheet = gpu.call("sheet", model, picture, text, method, dict(options))
            return iter(sheet)
        with lock:
            maps = engine.iter_tokens(model, picture, text, method, **options)      # checks the options now
        return _locked(maps, lock)

    def modality(self, image: ImageSource, target: Target, model_name: str | None = None) -> dict[str, Any]:
        """How much of the prediction comes from the image and how much from the text: {"image_share",
        "text_share"} summing to 1, plus the engine's details ("text": per-word values, "seconds"). The engine
        caches it."""
        require_explain()
        picture = load_image(image)
        target = clean_target(target)
        model = self.pool.model(model_name)
        with self.pool.lock(model.info.name):
            out = gpu.call("modality", model, picture, target)
        out["image_share"], out["text_share"] = float(out["image_share"]), float(out["text_share"])
        return out

    def faithfulness(self, model_name: str | None = None, methods: list[str] | None = None) -> list[dict[str, Any]]:
        """Per explanation method, on the example scenes and their questions (the model's own answers): the
        pointing game, deletion and insertion AUC against random maps, and milliseconds per map (cached)."""
        engine = require_explain()
        from ..world.examples import example_scene, read_examples
        from ..world.language import all_questions

        model = self.pool.with_task(model_name, "vqa")
        name = model.info.name
        methods = list(methods or self.methods(name, output="image"))
        from ..explain.engine import model_key

        key = ("faithfulness", model_key(model), tuple(methods))
        cached = engine.CACHE.get(key)
        if cached is None:
            cases = []
            for row in read_examples():
                scene, image = example_scene(row)
                question = next((q for q in all_questions(scene) if q.text == row["question"]), None)
                if question is None:
                    continue
                answer = self.ask(image, question.text, name).answer
                masks = [scene.masks[i] for i in question.evidence] if scene.masks else []
                cases.append((image, Target("answer", answer, question=question.text), masks))
            with self.pool.lock(name):
                cached = engine.faithfulness_table(model, cases, methods, steps=FAITHFULNESS_STEPS)
            engine.CACHE.put(key, cached)
        return [dict(row) for row in cached]


def _locked(items: Iterator[Any], lock: Any) -> Iterator[Any]:
    """`items`, each one made while holding `lock` (and none after the consumer stops)."""
    while True:
        with lock:
            item = next(items, None)
        if item is None:
            return
        yield item


def clean_caption(caption: Any) -> str:
    if not isinstance(caption, str):
        raise InputError(f"a caption must be text, not {type(caption).__name__}")
    return clean_target(Target("caption", caption)).text


def _honoured(model: Any, settings: Decoding) -> dict[str, Any]:
    """The settings that shaped this model's output: `to_dict()` less what the model does not honour."""
    return {k: v for k, v in settings.to_dict().items() if k in model.honours}


def clean_question(question: Any) -> str:
    """The question stripped; InputError when it is not text, empty, or longer than MAX_QUESTION_CHARS."""
    if question is None:
        raise InputError("the question is empty; type a question about the image")
    if not isinstance(question, str):
        raise InputError(f"the question must be text, not {type(question).__name__}")
    text = " ".join(question.split())
    if not text:
        raise InputError("the question is empty; type a question about the image")
    if len(text) > MAX_QUESTION_CHARS:
        raise InputError(f"the question is {len(text):,} characters long; the limit is {MAX_QUESTION_CHARS}")
    return text


def clean_target(target: Target) -> Target:
    if not isinstance(target, Target):
        raise InputError(f"an explanation target must be a mmdemo.Target, not {type(target).__name__}")
    if target.kind == "answer":
        question = clean_question(target.question)
        text = (target.text or "").strip()
        if not text:
            raise InputError("say which answer to explain")
        return Target("answer", text, question=question, contrast=target.contrast)
    text = " ".join((target.text or "").split())
    if not text:
        raise InputError("the caption to explain is empty; caption the image first")
    if len(text) > MAX_CAPTION_CHARS:
        raise InputError(f"the caption is {len(text):,} characters long; the limit is {MAX_CAPTION_CHARS:,}")
    return Target(target.kind, text, token=target.token, contrast=target.contrast)


def optional(module: str) -> Any:
    """The module, or None when it is not part of this installation (a missing dependency is an error)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.startswith(e.name):
            return None
        raise


def require_explain() -> Any:
    engine = optional("mmdemo.explain")
    if engine is None or not hasattr(engine, "explain"):
        raise MmdemoError("explanations are not available in this installation (no mmdemo.explain)")
    return engine
