"""The norm family (being written)."""
