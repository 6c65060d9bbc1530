"""mmdemo in the browser: `python app.py` (listens where GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say)."""
from mmdemo.ui import build_app, launch_options

demo = build_app()

if __name__ == "__main__":
    demo.launch(**launch_options())
