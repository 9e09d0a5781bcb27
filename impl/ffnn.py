"""The ffnn family (being written)."""
