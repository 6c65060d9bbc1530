"""Small helpers shared by tests."""
import os

import pytest

from mmdemo.models.registry import get_entry


def require_weights(name: str) -> None:
    """Skip when a shipped model's weights are absent, except in CI where they must be there."""
    if not get_entry(name).available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} weights (or the packages that carry them) are missing in CI")
        pytest.skip(f"{name} weights not trained yet")
