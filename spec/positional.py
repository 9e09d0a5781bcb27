"""The positional family (being written)."""
