"""The gru family (being written)."""
