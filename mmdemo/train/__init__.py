"""Training and evaluation of the embedded shapes models."""
