"""The Gradio app: one module per tab, `build_app()` wires them to one `mmdemo.service.Service`.

    from mmdemo.ui import build_app, launch_options
    build_app().launch(**launch_options())
"""
from .app import build_app, launch_options

__all__ = ["build_app", "launch_options"]
