"""Properties of the lm equations (being written)."""
