"""Properties of the gru equations: the GRU's state update as a convex interpolation.

- ``convex_interpolation``: the GRU state is (1 − z) ⊙ h_{t−1} + z ⊙ h̃ with the target's own z and h̃.

It works through the ``target(arrays, sizes)`` convention, so it applies to any implementation.
"""

from ._base import _agree, _between, _value, prop


@prop(
    "convex_interpolation",
    "the value is (1 − w) ⊙ start + w ⊙ end with the target's own w and end, so lies between start and end",
)
def _interpolation(eq, target, example, data, options, tol):
    result = target(example.arrays, example.sizes)
    value = result[options["value"]]
    w = _value(options["weight"], result, example)
    start, end = (_value(options[k], result, example) for k in ("start", "end"))
    _agree(
        "convex_interpolation",
        target,
        value,
        (1 - w) * start + w * end,
        f"{options['value']} is not (1 − {options['weight']}) ⊙ {options['start']} + "
        f"{options['weight']} ⊙ {options['end']}",
        tol,
    )
    _between("convex_interpolation", target, value, start, end, options["value"], tol)
