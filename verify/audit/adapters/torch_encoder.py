"""Built-in audit targets of a stack of blocks: ``nn.TransformerEncoder`` with and without its final norm
(torch 2.13).

(Being written: registers nothing yet.)
"""
