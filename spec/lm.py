"""The lm family (being written)."""
