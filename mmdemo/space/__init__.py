"""A ready Hugging Face Space folder for mmdemo: README front matter, requirements, app.py and the package itself.

    from mmdemo.space import generate
    summary = generate("zero-gpu", ["blip-caption", "shapes-cross"], "out/space", dataset="me/corrections")

`python -m mmdemo space --hardware cpu-basic|t4-small|zero-gpu --models A,B --out DIR [--dataset USER/NAME]` does
the same from the command line. No torch, no gradio, no network here.
"""
from ._hardware import HARDWARE, Hardware
from ._preload import PRELOAD_FILES, preload_entry
from ._folder import SpaceSpec, front_matter, generate, plan, requirements

__all__ = ["HARDWARE", "PRELOAD_FILES", "Hardware", "SpaceSpec", "front_matter", "generate",
           "plan", "preload_entry", "requirements"]
