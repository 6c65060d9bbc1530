"""Packaging facts the Space and CI rely on: README header and space.yaml agree, app.py stays thin."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    m = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert m, "README.md must start with the Space's YAML header"
    return _pairs(m.group(1))


def _pairs(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", " ", "-")) and ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip().strip('"')
    return out


def test_readme_header_and_space_yaml_agree():
    header, space = _front_matter(), _pairs((ROOT / "space.yaml").read_text())
    for key in ("sdk", "sdk_version", "app_file", "python_version"):
        assert header[key] == space[key], key
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py"


def test_sdk_version_is_within_the_required_gradio_range():
    major = int(_front_matter()["sdk_version"].split(".")[0])
    req = (ROOT / "requirements.txt").read_text()
    assert f"gradio>={major}" in req and f"<{major + 1}" in req


def test_app_py_is_thin_and_imports_no_torch():
    tree = ast.parse((ROOT / "app.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names} | {n.module.split(".")[0] for n in ast.walk(tree)
                                  if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" not in names
    assert len((ROOT / "app.py").read_text().splitlines()) <= 30


def test_gradio_only_under_ui():
    for path in (ROOT / "mmdemo").rglob("*.py"):
        if "ui" in path.relative_to(ROOT / "mmdemo").parts:
            continue
        tree = ast.parse(path.read_text())
        for n in ast.walk(tree):
            mods = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                   [n.module or ""] if isinstance(n, ast.ImportFrom) else []
            assert not any(m.split(".")[0] == "gradio" for m in mods), f"{path} imports gradio"


def test_readme_test_command_is_what_ci_runs():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q" in readme and "python -m pytest -q" in ci
