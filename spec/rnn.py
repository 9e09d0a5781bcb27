"""The rnn family (being written)."""
