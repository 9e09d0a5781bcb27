"""The transformer family (being written)."""
