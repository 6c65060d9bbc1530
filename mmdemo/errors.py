"""Errors a user can act on. The CLI turns each into one line on stderr and exit code 2."""


class MmdemoError(Exception):
    """Base class: the message is meant for the user, no traceback needed."""


class ImageError(MmdemoError, ValueError):
    """An image could not be read, or is not acceptable (too large, empty, corrupt)."""


class InputError(MmdemoError, ValueError):
    """A question, caption or other text input is not acceptable."""


class UnknownModelError(MmdemoError, KeyError):
    """No model is registered under that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsMissingError(MmdemoError, FileNotFoundError):
    """A model's weights are not on this machine."""


class StoreError(MmdemoError, RuntimeError):
    """The corrections store cannot be read or written."""
