"""The gpt2 family (being written)."""
