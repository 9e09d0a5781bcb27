"""Properties of the vit equations (being written)."""
