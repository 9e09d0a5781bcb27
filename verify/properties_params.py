"""Properties of the params equations (being written)."""
