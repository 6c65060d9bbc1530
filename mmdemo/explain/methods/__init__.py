"""The explanation methods: one class per file, each registers itself (`_registry.register`) when imported."""
