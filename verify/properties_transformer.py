"""Properties of the transformer equations (being written)."""
