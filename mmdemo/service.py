"""What the UI calls: one object that owns the model cache, the corrections store and a modality-share cache.

    from mmdemo.service import Service
    service = Service()                                   # cheap: models and store open on first use
    service.caption("assets/examples/scene-1.png").caption
    service.ask("assets/examples/scene-1.png", "what color is the square?").answer

No gradio here. Every entry point takes raw input (a path, bytes, PIL image or numpy array) and runs it
through `images.load_image`; every failure a user can act on is an `MmdemoError` whose message is for
them. A store that cannot be opened fails the store calls only; captioning and answering go on.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

from .config import settings
from .errors import InputError, MmdemoError, StoreError, UnknownModelError
from .images import ImageSource, content_hash, load_image
from .models.base import Target, VLModel
from .models.registry import ModelEntry, list_models, resolve

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 500       # longest question accepted, after stripping
MAX_TOP_K = 20                 # most answers a top-k list may ask for
MAX_TOKENS = 64                # most caption tokens a request may ask for
STRATEGIES = ("greedy", "beam", "nucleus")
PHOTO_MODEL = "photo-lite"    # what the app suggests for photos when a shapes-world model is chosen
FUSION_MODELS = ("shapes-early", "shapes-cross", "shapes-late")   # the Fusion lab's columns, in this order
MODALITY_CACHE = 64            # modality shares (and faithfulness tables) kept, least recently used dropped first
FAITHFULNESS_STEPS = 16        # points on each deletion/insertion curve in `faithfulness`

F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------------------------------------ GPU


def _on_gpu(fn: F) -> F:
    """`spaces.GPU(fn)` on a Hugging Face Space with a GPU (ZeroGPU included); `fn` unchanged everywhere else."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    zero_gpu = bool(os.environ.get("SPACES_ZERO_GPU"))
    if not zero_gpu:
        try:
            import torch
            if not torch.cuda.is_available():
                return fn
        except ImportError:
            return fn
    return spaces.GPU(fn)  # type: ignore[no-any-return]


# -------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker."""
    name: str
    tasks: tuple[str, ...]
    fusion: str
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tasks": list(self.tasks), "fusion": self.fusion, "summary": self.summary}


@dataclass(frozen=True)
class CaptionResult:
    model: str
    caption: str
    tokens: list[tuple[str, float]]     # (token, probability it was given when generated)
    seconds: float
    decoding: dict[str, Any]            # the settings it was generated with (as sent to the model)
    image_hash: str

    def to_dict(self) -> dict[str, Any]:
        """The CLI's caption JSON, plus the decoding settings and the image's content hash."""
        return {"model": self.model, "caption": self.caption,
                "tokens": [{"token": t, "prob": p} for t, p in self.tokens],
                "seconds": self.seconds, "decoding": self.decoding, "image_hash": self.image_hash}


@dataclass(frozen=True)
class AnswerResult:
    model: str
    question: str
    answer: str
    prob: float
    top_k: list[tuple[str, float]]
    seconds: float
    image_hash: str

    def to_dict(self) -> dict[str, Any]:
        """The CLI's ask JSON, plus the image's content hash."""
        return {"model": self.model, "question": self.question, "answer": self.answer, "prob": self.prob,
                "top_k": [{"answer": a, "prob": p} for a, p in self.top_k], "seconds": self.seconds,
                "image_hash": self.image_hash}


@dataclass(frozen=True)
class SavedCorrection:
    id: str
    count: int                          # live corrections in the store after this save
    diff: list[tuple[str, str]]         # word-level diff, (op, words): op is equal | delete | insert

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "count": self.count, "diff": [{"op": o, "text": t} for o, t in self.diff]}


# ----------------------------------------------------------------------------------------- decoding


def decoding_settings(strategy: str = "greedy", max_tokens: int = 24, *, num_beams: int = 3, top_p: float = 0.9,
                      temperature: float = 1.0, seed: int | None = None) -> dict[str, Any]:
    """The UI's decoding controls as one checked settings dict (names as the shapes models take them)."""
    if strategy not in STRATEGIES:
        raise InputError(f"decoding strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    max_tokens = _int_in(max_tokens, "max tokens", 1, MAX_TOKENS)
    out: dict[str, Any] = {"max_tokens": max_tokens}
    if strategy == "beam":
        out["num_beams"] = _int_in(num_beams, "number of beams", 2, 8)
    elif strategy == "nucleus":
        out["do_sample"] = True
        out["top_p"] = _float_in(top_p, "top-p", 0.05, 1.0)
        out["temperature"] = _float_in(temperature, "temperature", 0.05, 2.0)
        if seed is not None and int(seed) >= 0:
            out["seed"] = int(seed)
    return out


def _for_model(model: VLModel, decoding: Mapping[str, Any]) -> dict[str, Any]:
    """Translate settings to the names `model.caption` takes: models with an explicit `max_tokens`
    parameter (the shapes models) take ours; the others (hub adapters) take transformers' `generate` names."""
    params = inspect.signature(model.caption).parameters
    if "max_tokens" in params:
        return dict(decoding)
    out = {("max_new_tokens" if k == "max_tokens" else k): v for k, v in decoding.items() if k != "seed"}
    return out


def _int_in(value: Any, name: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi]; sliders send 24.0 for 24, so integral floats pass."""
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():  # also NaN and infinities
        raise InputError(f"{name} must be a whole number, not {value!r}")
    number = int(number)
    if not lo <= number <= hi:
        raise InputError(f"{name} must be between {lo} and {hi}, not {number}")
    return number


def _float_in(value: Any, name: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, not {value!r}") from None
    if not lo <= number <= hi:  # also refuses NaN
        raise InputError(f"{name} must be between {lo} and {hi}, not {number}")
    return number


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


# ------------------------------------------------------------------------------------------ the service


class Service:
    """Models by name (loaded lazily, each once, one lock per model), explanations, corrections.

    preloaded: models to offer as they are, by name (tests pass tiny ones); they shadow registered names.
    store_url: where the corrections store lives (None: MMDEMO_DATABASE_URL, else SQLite in the data folder).
    loader: how a name becomes a model (default `mmdemo.models.registry.load`).
    """

    def __init__(self, *, preloaded: Mapping[str, VLModel] | None = None, store_url: str | None = None,
                 loader: Callable[..., VLModel] | None = None):
        self._models: dict[str, VLModel] = dict(preloaded or {})
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in self._models}
        self._locks_guard = threading.Lock()        # guards _locks (creating a model's lock)
        self._loader = loader
        self._store_url = store_url
        self._store: Any = None
        self._store_guard = threading.Lock()
        self._shares: OrderedDict[tuple, Any] = OrderedDict()
        self._shares_guard = threading.Lock()

    # --- models --------------------------------------------------------------------------------
    def models(self, task: str | None = None) -> list[ModelChoice]:
        """The models the picker offers: preloaded ones, registered ones whose weights are here (hub
        models only on a Space, `SPACE_ID`, or when MMDEMO_MODELS names them), and MMDEMO_MODELS' others."""
        cfg = settings()
        on_space = bool(os.environ.get("SPACE_ID"))
        wanted = set(cfg.extra_models)
        out: dict[str, ModelChoice] = {}
        for name, model in self._models.items():
            info = model.info
            out[name] = ModelChoice(name, tuple(info.tasks), info.fusion, info.knows or name)
        for entry in list_models():
            if entry.name in out or not entry.available():
                continue
            if _is_hub(entry) and not (on_space or entry.name in wanted):
                continue
            out[entry.name] = _choice(entry)
        for name in cfg.extra_models:
            if name in out:
                continue
            try:
                entry = resolve(name)
            except MmdemoError as e:
                log.warning("MMDEMO_MODELS names %r, which cannot be offered: %s", name, e)
                continue
            if entry.available():
                out[name] = _choice(entry, name)
        choices = list(out.values())
        return [c for c in choices if task is None or task in c.tasks]

    def default_model(self, task: str | None = None) -> str | None:
        """MMDEMO_DEFAULT_MODEL when offered (for the task), else the first offered model, else None."""
        names = [c.name for c in self.models(task)]
        wanted = settings().default_model
        return wanted if wanted in names else (names[0] if names else None)

    def fusion_models(self) -> list[str]:
        """The Fusion lab's models that are offered here, early → cross → late."""
        offered = {c.name for c in self.models("vqa")}
        return [name for name in FUSION_MODELS if name in offered]

    def model(self, name: str | None = None) -> VLModel:
        """The model by name (None: the default), loaded on first use; only offered models can be loaded."""
        name = name or self.default_model()
        if not name:
            raise UnknownModelError("no model is available here: no model's weights are on this machine")
        if not isinstance(name, str):
            raise InputError(f"a model name must be text, not {type(name).__name__}")
        loaded = self._models.get(name)
        if loaded is not None:
            return loaded
        offered = [c.name for c in self.models()]
        if name not in offered:  # never open arbitrary folders or hub ids that a request names
            raise UnknownModelError(f"model {name!r} is not offered here; "
                                    f"choose one of: {', '.join(offered) or 'none'}")
        with self._lock(name):
            if name not in self._models:
                started = time.perf_counter()
                loader = self._loader
                if loader is None:
                    from .models.registry import load as loader
                self._models[name] = loader(name)
                log.info("loaded %s in %.2f s", name, time.perf_counter() - started)
            return self._models[name]

    def suggest(self, image: ImageSource | None, name: str | None = None) -> str | None:
        """A model better suited to this image, or None: `photo-lite` when a shapes-world model is asked about
        something that does not look like a shapes scene (and photo-lite is offered here)."""
        from .world.detect import looks_like_scene

        name = name or self.default_model()
        if image is None or not name or not name.startswith("shapes-"):
            return None
        if looks_like_scene(load_image(image)):
            return None
        return PHOTO_MODEL if PHOTO_MODEL in {c.name for c in self.models()} else None

    def knows(self, name: str | None = None) -> str:
        """One sentence on what the model can see (its `info.knows`), for the UI."""
        model = self.model(name)
        return model.info.knows or f"{model.info.name}: no description of what it was trained on."

    def info(self, name: str | None = None) -> dict[str, Any]:
        return self.model(name).info.to_dict()

    def warm(self, name: str | None = None) -> None:
        """Load a model and run it once on a tiny image, so that the first user request is fast."""
        from PIL import Image

        model = self.model(name)
        image = Image.new("RGB", (64, 64), (245, 245, 240))
        with self._lock(model.info.name):
            if "caption" in model.info.tasks:
                model.caption([image], **_for_model(model, {"max_tokens": 4}))
            if "vqa" in model.info.tasks:
                model.answer([image], ["how many objects are there?"], top_k=1)

    # --- captions and answers ------------------------------------------------------------------
    def caption(self, image: ImageSource, model_name: str | None = None, **decoding: Any) -> CaptionResult:
        """Caption one image. `decoding`: `decoding_settings`' arguments (strategy, max_tokens, num_beams, top_p,
        temperature, seed); greedy with at most 24 tokens when none are given."""
        picture = load_image(image)
        try:
            settings_ = decoding_settings(**decoding)
        except TypeError:
            raise InputError(f"unknown decoding setting in {sorted(decoding)}; known: strategy, max_tokens, "
                             "num_beams, top_p, temperature, seed") from None
        model = self._with_task(model_name, "caption")
        started = time.perf_counter()
        with self._lock(model.info.name):
            result = _caption(model, picture, _for_model(model, settings_))
        return CaptionResult(model.info.name, result.text, [(t, float(p)) for t, p in result.tokens],
                             round(time.perf_counter() - started, 4), dict(settings_), content_hash(picture))

    def ask(self, image: ImageSource, question: Any, model_name: str | None = None, top_k: int = 5) -> AnswerResult:
        """Answer one question about one image, with the `top_k` most likely answers."""
        picture = load_image(image)
        text = clean_question(question)
        k = _int_in(top_k, "top-k", 1, MAX_TOP_K)
        model = self._with_task(model_name, "vqa")
        started = time.perf_counter()
        with self._lock(model.info.name):
            result = _answer(model, picture, text, k)
        return AnswerResult(model.info.name, text, result.answer, float(result.prob),
                            [(a, float(p)) for a, p in result.top_k], round(time.perf_counter() - started, 4),
                            content_hash(picture))

    # --- explanations ----------------------------------------------------------------------------
    def methods(self, model_name: str | None = None, output: str | None = None) -> list[str]:
        """Explanation methods that work for this model ([] when the explain package is not installed).
        `output`: only methods that give an "image" map, or only those that score the "text" words."""
        engine = _optional("mmdemo.explain")
        if engine is None:
            return []
        names = engine.available_methods(self.model(model_name))
        return [n for n in names if output is None or getattr(engine.METHODS[n], "output", "image") == output]

    def explain(self, image: ImageSource, target: Target, model_name: str | None = None, method: str = "attention",
                **options: Any) -> Any:
        """An `mmdemo.explain.Explanation` of `target` (cached by the engine per image, model, target, method,
        options)."""
        engine = _require_explain()
        picture = load_image(image)
        target = self._clean_target(target)
        model = self.model(model_name)
        methods = list(engine.available_methods(model))
        if not isinstance(method, str) or method not in methods:
            raise InputError(f"method {method!r} does not work with {model.info.name}; choose one of: "
                             f"{', '.join(methods) or 'none'}")
        with self._lock(model.info.name):
            return _explain(engine, model, picture, target, method, options)

    def modality(self, image: ImageSource, target: Target, model_name: str | None = None) -> dict[str, Any]:
        """How much of the prediction comes from the image and how much from the text: {"image_share",
        "text_share"} summing to 1, plus the engine's details ("text": per-word values, "seconds"). Cached."""
        engine = _require_explain()
        picture = load_image(image)
        target = self._clean_target(target)
        model = self.model(model_name)
        key = (content_hash(picture), model.info.name, model.info.revision or id(model), target)
        cached = self._cached(key)
        if cached is None:
            with self._lock(model.info.name):
                cached = dict(_modality(engine, model, picture, target))
            cached["image_share"], cached["text_share"] = float(cached["image_share"]), float(cached["text_share"])
            self._remember(key, cached)
        return dict(cached)

    def faithfulness(self, model_name: str | None = None, methods: list[str] | None = None) -> list[dict[str, Any]]:
        """Per explanation method, on the example scenes and their questions (the model's own answers): the
        pointing game (hits on the question's evidence objects), deletion and insertion AUC against random
        maps, and milliseconds per map. Computed once per model (cached)."""
        engine = _require_explain()
        from .world.examples import example_scene, read_examples
        from .world.language import all_questions

        model = self._with_task(model_name, "vqa")
        name = model.info.name
        key = ("faithfulness", name, model.info.revision or id(model), tuple(methods or ()))
        cached = self._cached(key)
        if cached is not None:
            return [dict(row) for row in cached]
        cases = []
        for row in read_examples():
            scene, image = example_scene(row)
            question = next((q for q in all_questions(scene) if q.text == row["question"]), None)
            if question is None:
                continue
            answer = self.ask(image, question.text, name).answer
            masks = [scene.masks[i] for i in question.evidence] if scene.masks else []
            cases.append((image, Target("answer", answer, question=question.text), masks))
        rows = []
        for method in methods or self.methods(name, output="image"):
            hits, curves, seconds = [], [], []
            for image, target, masks in cases:
                exp = self.explain(image, target, name, method=method)
                seconds.append(exp.seconds)
                with self._lock(name):
                    curves.append(engine.deletion_insertion(model, image, target, exp.grid,
                                                            steps=FAITHFULNESS_STEPS, random_maps=2))
                if masks:
                    hits.append(engine.pointing_game(exp.grid, masks))
            mean = lambda values: round(sum(values) / len(values), 4) if values else None  # noqa: E731
            rows.append({"method": method, "pointing game": mean([float(h) for h in hits]),
                         "deletion AUC": mean([c["deletion_auc"] for c in curves]),
                         "random deletion AUC": mean([c["random"]["deletion_auc"] for c in curves]),
                         "insertion AUC": mean([c["insertion_auc"] for c in curves]),
                         "random insertion AUC": mean([c["random"]["insertion_auc"] for c in curves]),
                         "ms per map": mean([1000 * s for s in seconds]), "scenes": len(cases)})
        self._remember(key, rows)
        return [dict(row) for row in rows]

    def _clean_target(self, target: Target) -> Target:
        if not isinstance(target, Target):
            raise InputError(f"an explanation target must be a mmdemo.Target, not {type(target).__name__}")
        if target.kind == "answer":
            question = clean_question(target.question)
            text = (target.text or "").strip()
            if not text:
                raise InputError("say which answer to explain")
            return Target("answer", text, question=question)
        text = " ".join((target.text or "").split())
        if not text:
            raise InputError("the caption to explain is empty; caption the image first")
        if len(text) > 2_000:
            raise InputError(f"the caption is {len(text):,} characters long; the limit is 2,000")
        return Target(target.kind, text, token=target.token)

    def _cached(self, key: tuple) -> Any:
        with self._shares_guard:
            if key in self._shares:
                self._shares.move_to_end(key)
                return self._shares[key]
        return None

    def _remember(self, key: tuple, value: Any) -> None:
        with self._shares_guard:
            self._shares[key] = value
            while len(self._shares) > MODALITY_CACHE:
                self._shares.popitem(last=False)

    # --- corrections -----------------------------------------------------------------------------
    def store(self) -> Any:
        """The corrections store, opened on first use. StoreError when it cannot be (the rest goes on working)."""
        with self._store_guard:
            if self._store is None:
                module = _optional("mmdemo.store")
                if module is None:
                    raise StoreError("saving corrections is not available in this installation (no mmdemo.store)")
                try:
                    self._store = module.open_store(self._store_url)
                except MmdemoError:
                    raise
                except Exception as e:  # a driver or file-system failure the store did not translate
                    log.exception("cannot open the corrections store")
                    raise StoreError(f"the corrections store cannot be opened: {e}") from None
            return self._store

    def save_correction(self, image: ImageSource, model_output: str | None, corrected: str, *,
                        model_name: str, task: str = "caption", question: str | None = None,
                        annotator: str | None = None, note: str | None = None,
                        decoding: dict[str, Any] | None = None) -> SavedCorrection:
        """Save a corrected caption (task "caption") or answer (task "vqa"); the store checks the text and keeps
        it verbatim."""
        picture = load_image(image)
        if task not in ("caption", "vqa"):
            raise InputError(f"task must be caption or vqa, not {task!r}")
        if task == "vqa":
            question = clean_question(question)
        if not isinstance(model_name, str) or not model_name.strip():
            raise InputError("say which model produced the output")
        if not isinstance(corrected, str) or not corrected.strip():
            raise InputError("the correction is empty; type the corrected text")
        loaded = self._models.get(model_name)
        revision = loaded.info.revision if loaded is not None else None
        store = self.store()
        cid = store.add(picture, model_output, corrected, model=model_name, model_revision=revision or None,
                        task=task, question=question if task == "vqa" else None, annotator=annotator, note=note,
                        decoding=decoding)
        return SavedCorrection(cid, store.count(), [(op.op, op.text) for op in self.diff(model_output, corrected)])

    @staticmethod
    def diff(model_output: str | None, corrected: str | None) -> list[Any]:
        """Word-level diff from the model output to the correction (a list of store DiffOps)."""
        module = _optional("mmdemo.store")
        if module is None:
            raise StoreError("word diffs need mmdemo.store, which is not installed")
        return module.word_diff(model_output, corrected)

    def corrections(self, **filters: Any) -> list[Any]:
        """A page of corrections, newest first (`Store.list` filters: model, task, annotator, search, limit, …)."""
        return self.store().list(**{k: v for k, v in filters.items() if v not in (None, "")})

    def count(self, **filters: Any) -> int:
        return self.store().count(**{k: v for k, v in filters.items() if v not in (None, "")})

    def stats(self) -> dict[str, Any]:
        return self.store().stats()

    def export(self, fmt: str, folder: str | os.PathLike | None = None, **filters: Any) -> str:
        """Write the corrections in `fmt` (csv, jsonl, coco, parquet) to a new file outside the data
        folder (a fresh temporary folder unless `folder` is given) and return its path."""
        module = _optional("mmdemo.store.exports")
        if module is None:
            raise StoreError("exports are not available in this installation (no mmdemo.store.exports)")
        if fmt not in module.FORMATS:
            raise InputError(f"export format must be one of {', '.join(module.FORMATS)}, not {fmt!r}")
        out = folder or tempfile.mkdtemp(prefix="mmdemo-export-")
        suffix = {"coco": "coco.json", "jsonl": "jsonl"}.get(fmt, fmt)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = os.path.join(out, f"corrections-{stamp}.{suffix}")
        filters = {k: v for k, v in filters.items() if v not in (None, "")}
        return module.export(self.store(), fmt, path, **filters).path

    def image_bytes(self, image_hash: str) -> bytes:
        return self.store().image_bytes(image_hash)

    def close(self) -> None:
        with self._store_guard:
            if self._store is not None:
                self._store.close()
                self._store = None

    # --- helpers ---------------------------------------------------------------------------------
    def _lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    def _with_task(self, model_name: str | None, task: str) -> VLModel:
        model = self.model(model_name or self.default_model(task))
        if task not in model.info.tasks:
            verb = {"caption": "write captions", "vqa": "answer questions"}[task]
            others = ", ".join(c.name for c in self.models(task)) or "none here"
            raise InputError(f"{model.info.name} does not {verb}; models that do: {others}")
        return model

    # --- campaigns (thin: mmdemo.store's campaign methods do the work) ----------------------------
    def campaigns(self) -> list[Any]:
        """Every campaign (store Campaign objects), oldest first."""
        return self.store().list_campaigns()

    def campaign(self, name: str) -> Any:
        return self.store().get_campaign(name)

    def create_campaign(self, name: str, images: str | os.PathLike, *, model: str, **settings: Any) -> tuple[Any, bool]:
        """Create campaign `name` (or refill it) from a folder, COCO file or table; pre-annotation uses this
        service's models. Returns (mmdemo.campaigns.FillResult, whether it existed)."""
        from .campaigns import create_and_fill

        return create_and_fill(self.store(), name, images, model=model, loader=self.model, **settings)

    def next_task(self, campaign: str, annotator: str) -> Any:
        """Lease the next task of `campaign` to `annotator` (a store Task), or None when none is left for them."""
        return self.store().next_task(campaign, annotator)

    def submit_task(self, task_id: int, corrected: str, annotator: str) -> str:
        """Save the annotator's text for the task; returns the correction id."""
        return self.store().submit_task(task_id, corrected, annotator)

    def skip_task(self, task_id: int, annotator: str) -> None:
        self.store().skip_task(task_id, annotator)

    def previous_task(self, campaign: str, annotator: str, before: int | None = None) -> Any:
        return self.store().previous_task(campaign, annotator, before)

    def review_task(self, correction_id: str, action: str, reviewer: str, *, corrected: str | None = None,
                    version: int | None = None) -> dict[str, Any]:
        return self.store().review_task(correction_id, action, reviewer, corrected=corrected, version=version)

    def review_queue(self, campaign: str, limit: int = 50) -> list[dict[str, Any]]:
        return self.store().review_queue(campaign, limit=limit)

    def campaign_status(self, campaign: str) -> dict[str, Any]:
        return self.store().campaign_status(campaign)

    def campaign_counts(self, campaign: str) -> dict[str, int]:
        return self.store().campaign_counts(campaign)

    def edit_correction(self, correction_id: str, corrected: str, annotator: str | None = None) -> dict[str, Any]:
        """A new version of any saved correction; returns it with its history (JSON-ready)."""
        return self.store().update(correction_id, corrected, annotator).to_dict(history=True)

    def restore_version(self, correction_id: str, version: int, annotator: str | None = None) -> dict[str, Any]:
        """An earlier version's text becomes the latest (as a new version); returns the correction with its history."""
        return self.store().restore_version(correction_id, version, annotator).to_dict(history=True)


# ------------------------------------------------------------------------------------- model calls


@_on_gpu
def _caption(model: VLModel, image: Any, decoding: dict[str, Any]) -> Any:
    return model.caption([image], **decoding)[0]


@_on_gpu
def _answer(model: VLModel, image: Any, question: str, top_k: int) -> Any:
    return model.answer([image], [question], top_k=top_k)[0]


@_on_gpu
def _explain(engine: Any, model: VLModel, image: Any, target: Target, method: str, options: dict[str, Any]) -> Any:
    return engine.explain(model, image, target, method=method, **options)


@_on_gpu
def _modality(engine: Any, model: VLModel, image: Any, target: Target) -> Any:
    return engine.modality_share(model, image, target)


def _optional(module: str) -> Any:
    """The module, or None when it is not part of this installation (a missing dependency is an error)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.startswith(e.name):
            return None
        raise


def _require_explain() -> Any:
    engine = _optional("mmdemo.explain")
    if engine is None or not hasattr(engine, "explain"):
        raise MmdemoError("explanations are not available in this installation (no mmdemo.explain)")
    return engine


def _is_hub(entry: ModelEntry) -> bool:
    return entry.factory.startswith("mmdemo.models.hub")


def _choice(entry: ModelEntry, name: str | None = None) -> ModelChoice:
    return ModelChoice(name or entry.name, tuple(entry.tasks), entry.fusion, entry.summary)


__all__ = ["AnswerResult", "CaptionResult", "ModelChoice", "SavedCorrection", "Service", "clean_question",
           "decoding_settings"]
