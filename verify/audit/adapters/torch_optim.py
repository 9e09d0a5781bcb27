"""Built-in audit targets of training: ``torch.optim.SGD`` (with and without weight decay),
``torch.optim.AdamW`` and ``torch.optim.Adam`` with weight decay (the coupled L2 form), one step from the
spec's parameters and gradient (torch 2.13).

(Being written: registers nothing yet.)
"""
