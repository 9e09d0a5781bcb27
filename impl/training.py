"""The training family (being written)."""
