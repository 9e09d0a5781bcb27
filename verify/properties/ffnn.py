"""Properties of the ffnn equations: the fixed-width context of a feed-forward language model.

- ``context_window``: column t of an FFNN context depends on the c tokens before t only.

It works through the ``target(arrays, sizes)`` convention, so it applies to any implementation.
"""

import numpy as np
from hypothesis import strategies as st

from ..strategies import tensors
from ._base import _agree, _with, prop


@prop("context_window", "column t of the context depends only on the c tokens before t")
def _window(eq, target, example, data, options, tol):
    name, out = options["tokens"], options["output"]
    width = example.sizes[options["window"]]
    arr = example.arrays[name]
    n = arr.shape[-1]
    pos = data.draw(st.integers(0, n - 1), label="position t")
    noise = data.draw(tensors(eq.declared(name).entry_kind, arr.shape, example.sizes), label=f"new {name}")
    index = np.arange(n)
    outside = (index < pos - width) | (index >= pos)  # the window of token pos is pos − c .. pos − 1
    before = target(example.arrays, example.sizes)[out][..., pos]
    after = target(_with(example, **{name: np.where(outside, noise, arr)}), example.sizes)[out][..., pos]
    _agree(
        "context_window",
        target,
        after,
        before,
        f"changing tokens outside positions {pos - width}..{pos - 1} (0-based) changed column {pos} of {out}",
        tol,
    )
