"""The bert family (being written)."""
