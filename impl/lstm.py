"""The lstm family (being written)."""
