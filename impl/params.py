"""The params family (being written)."""
