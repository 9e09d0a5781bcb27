"""The vit family (being written)."""
