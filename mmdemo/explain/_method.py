"""What every explanation method is: one class, one verb. `Method(model).attribute(inputs, **options)`."""
from __future__ import annotations

from typing import ClassVar

import torch

from ..models.base import ExplainInputs, VLModel


class MapMethod:
    """Signed relevance of each image patch for each item's target: `attribute(inputs) -> (B, h, w)`.

    Positive values support the target. Subclasses set `name`, `summary`, and (when not every model can run
    them) `supports`. Text methods set `output = "text"` and return (B, F) over each item's word features
    (see `_forward.word_features`), padded with zeros."""

    name: ClassVar[str]
    summary: ClassVar[str]
    output: ClassVar[str] = "image"            # "image": (B, h, w); "text": (B, F)
    contrastive: ClassVar[bool] = True         # follows the score, so it can explain a contrastive target

    def __init__(self, model: VLModel):
        self.model = model
        self.grid: tuple[int, int] = tuple(model.info.patch_grid)    # (h, w)

    @classmethod
    def supports(cls, model: VLModel) -> bool:
        return True

    def attribute(self, inputs: ExplainInputs, **options) -> torch.Tensor:
        raise NotImplementedError

    def attribute_rows(self, inputs: ExplainInputs, **options) -> torch.Tensor | None:
        """(B, T, h, w): the map of every caption token at once, for methods that read it off one pass (attention);
        None: each token takes its own `attribute` call."""
        return None

    def to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, P) patch values in raster order -> (B, h, w)."""
        return tokens.float().reshape(tokens.shape[0], *self.grid)
