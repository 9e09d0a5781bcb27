"""What the recurrent families share (spec/rnn.py, spec/lstm.py, spec/gru.py): their section of the
tutorial, the token index and the inputs of one step.

It stands below the three: rnn's language models build on the LSTM and GRU cells (rnn imports lstm and
gru), and the cells take their step's inputs from here.
"""

import sympy as sp

from .axes import d_e, d_h
from .tensors import TensorSymbol, tensor

SECTION = "RNN language models"

#: The token (time) index, 1-based; recurrences start at t = 0.
t = sp.Symbol("t", integer=True, positive=True)


def step_input() -> TensorSymbol:
    """``x_t ∈ ℝ^{d_e}``: the embedding of the token a step reads."""
    return tensor("x_t", (d_e,), meaning="embedding of token t")


def previous_state(name: str = "h_prev", tex: str = "h_{t - 1}") -> TensorSymbol:
    """``h_{t−1} ∈ ℝ^{d_h}``: the state a step starts from (0 before the first token)."""
    return tensor(name, (d_h,), tex=tex, meaning="state after the previous token (0 before the first)")
