"""Properties of the rnn equations (being written)."""
