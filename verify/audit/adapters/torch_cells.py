"""Built-in audit targets of one recurrent step: ``nn.RNNCell``, ``nn.LSTMCell`` and ``nn.GRUCell``
(torch 2.13).

(Being written: registers nothing yet.)
"""
