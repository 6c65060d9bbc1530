"""mmdemo: captioning, visual question answering and their explanations, with caption corrections kept as a dataset.

    import mmdemo
    model = mmdemo.load()                       # the embedded default model, no download
    image = mmdemo.load_image("assets/examples/scene1.png")
    print(model.caption([image])[0].text)
    print(model.answer([image], ["what color is the circle?"])[0].answer)
"""
from .errors import ImageError, InputError, MmdemoError, StoreError, UnknownModelError, WeightsMissingError
from .images import load_image
from .models.base import Answer, Caption, Decoding, ModelInfo, Target, VLModel
from .models.registry import list_models, load

__version__ = "0.1.0"
__all__ = [
    "Answer", "Caption", "Decoding", "ImageError", "InputError", "MmdemoError", "ModelInfo", "StoreError", "Target",
    "UnknownModelError", "VLModel", "WeightsMissingError", "list_models", "load", "load_image",
]
