"""impl/ positional encodings: hand values, odd widths, errors, modules, and the verifier."""

import math

import pytest
import torch

from lmspec import spec
from lmspec.impl.positional import (
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    learned,
    sinusoidal,
)
from lmspec.verify.runner import verify

torch.set_default_dtype(torch.float64)


def test_learned_takes_the_first_columns_as_rows():
    Lam = torch.arange(12.0).reshape(3, 4)  # d_e = 3, n_max = 4
    assert learned(Lam, 2).tolist() == [[0.0, 4.0, 8.0], [1.0, 5.0, 9.0]]
    with pytest.raises(ValueError, match="need 0 < n ≤ n_max, found n=5, n_max=4"):
        learned(Lam, 5)


def test_sinusoidal_hand_values():
    # d_e = 4: row t is (sin t, cos t, sin(t/100), cos(t/100))
    table = sinusoidal(4, 3, dtype=torch.float64)
    for t in range(3):
        want = [math.sin(t), math.cos(t), math.sin(t / 100), math.cos(t / 100)]
        assert table[t].tolist() == pytest.approx(want, rel=1e-15, abs=1e-16)
    assert table.dtype == torch.float64 and sinusoidal(4, 3).dtype == torch.float32


def test_sinusoidal_odd_width_and_errors():
    table = sinusoidal(3, 2, dtype=torch.float64)
    assert table[1].tolist() == pytest.approx(
        [math.sin(1), math.cos(1), math.sin(10000 ** (-2 / 3))], rel=1e-15
    )
    with pytest.raises(ValueError, match="d_e and n_max must be positive, found d_e=0, n_max=2"):
        sinusoidal(0, 2)


def test_modules():
    torch.manual_seed(0)
    pos = LearnedPositionalEncoding(n_max=6, d_e=5)
    assert pos.spec_params()["Lambda"].shape == (5, 6)
    torch.testing.assert_close(pos(4), pos.Lambda[:, :4].T)
    fixed = SinusoidalPositionalEncoding(n_max=6, d_e=5)
    assert list(fixed.parameters()) == [] and fixed(3).shape == (3, 5)
    with pytest.raises(ValueError, match="need 0 < n ≤ n_max, found n=7, n_max=6"):
        fixed(7)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_verifier_passes(seed):
    results = verify(spec.select(["positional"]), "quick", seed)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]
