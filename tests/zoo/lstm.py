"""LSTM cells in their authors' layouts: input and recurrent weights in two Linears with the gates
stacked in torch's order (i, f, g, o), and the classic slip of a `+` where a gate multiplies. Audited
against lstm.hidden and lstm.cell."""

import torch
from torch import nn

from . import ZooCase


class LSTMCell(nn.Module):
    """x2h holds [W_i; W_f; W_c; W_o] and the bias, h2h holds [U_i; U_f; U_c; U_o] (no second bias)."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.x2h = nn.Linear(input_size, 4 * hidden_size)
        self.h2h = nn.Linear(hidden_size, 4 * hidden_size, bias=False)

    def update(self, f, i, c, g):
        return f * c + i * g

    def forward(self, x, h, c):
        gates = self.x2h(x) + self.h2h(h)
        i, f, g, o = gates.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_next = self.update(f, i, c, g)
        h_next = o * torch.tanh(c_next)
        return h_next, c_next


class LSTMCellAddedInput(LSTMCell):
    def update(self, f, i, c, g):
        return f * c + i + g  # the input gate added to the candidate instead of multiplying it


def cell_update(forget, input_gate, c_prev, candidate):
    """c_t from the gates: the forget gate is added to the old cell state instead of scaling it."""
    return forget + c_prev + input_gate * candidate


CELL = {
    "x2h.weight": "W_i, W_f, W_c, W_o -> (4 d_h) d_e",
    "x2h.bias": "b_i, b_f, b_c, b_o -> (4 d_h)",
    "h2h.weight": "U_i, U_f, U_c, U_o -> (4 d_h) d_h",
}
STEP = "x:x_t=b d_e, h:h_prev=b d_h, c:c_prev=b d_h -> h_t=b d_h, c_t=b d_h"
SIZES = {"input_size": "d_e", "hidden_size": "d_h"}

CASES = [
    ZooCase("lstm_cell_two_linears", LSTMCell, as_="lstm.hidden", init=SIZES, params=CELL, layout=STEP,
            verdict="pass"),
    ZooCase("lstm_cell_input_gate_plus", LSTMCellAddedInput, as_="lstm.hidden", init=SIZES, params=CELL,
            layout=STEP, verdict="fail", bug="c_t = f ⊙ c_{t−1} + i + c̃ (i added, not multiplied)",
            tags=("lstm_gate_plus",), caught_by=("value=oracle",)),
    ZooCase("lstm_cell_update_forget_plus", cell_update, as_="lstm.cell", verdict="fail",
            layout="forget:f_t=b d_h, input_gate:i_t=b d_h, c_prev=b d_h, candidate:c_tilde=b d_h -> b d_h",
            bug="c_t = f + c_{t−1} + i ⊙ c̃ (f added, not multiplied)", tags=("lstm_gate_plus",),
            caught_by=("value=oracle",)),
]  # fmt: skip
