"""The activation family (being written)."""
