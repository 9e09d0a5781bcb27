"""Properties of the gpt2 equations (being written)."""
