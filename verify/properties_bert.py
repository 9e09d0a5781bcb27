"""Properties of the bert equations (being written)."""
