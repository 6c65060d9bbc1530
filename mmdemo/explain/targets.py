"""The target an explanation takes when none is given: the model's own answer, or its own caption."""
from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..models.base import Target, VLModel


def own_target(model: VLModel, image: Any, question: str | None = None) -> tuple[Target, Any]:
    """(Target, the model's Answer or Caption): the answer it gives to `question`, else the caption it writes."""
    if question is not None:
        if not question.strip():
            raise InputError("the question is empty")
        answer = model.answer([image], [question], top_k=1)[0]
        return Target("answer", answer.answer, question=question), answer
    if "caption" not in model.info.tasks:
        raise InputError(f"{model.info.name!r} does not caption images; give a question")
    caption = model.caption([image])[0]
    if not caption.text.strip():
        raise InputError("the model wrote an empty caption; give the caption to explain")
    return Target("caption", caption.text), caption
