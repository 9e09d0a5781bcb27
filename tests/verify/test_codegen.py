"""Generated PyTorch: compiles, runs batched, agrees with the oracle, and fixes TorchPrinter's gaps."""

import numpy as np
import pytest
import sympy as sp
import torch
from sympy.printing.pytorch import torch_code

from lmspec import spec
from lmspec.verify.codegen import compiled, generate
from lmspec.verify.oracle import Oracle


@pytest.mark.parametrize("eq", spec.select(["attention"]), ids=lambda e: e.id)
def test_generated_source_compiles_for_every_equation(eq):
    src = generate(eq)
    namespace: dict = {}
    exec(compile(src, eq.id, "exec"), namespace)
    assert callable(namespace[eq.id.replace(".", "_")])


def test_sympy_torch_printer_gaps_that_codegen_fixes():
    n, d_k = sp.symbols("n d_k", integer=True, positive=True)
    Q = sp.MatrixSymbol("Q", n, d_k)
    assert "permute(1 ,0)" in torch_code(Q.T)  # not batched: swaps the batch axis
    power = torch_code(1 / sp.sqrt(d_k))
    assert power == "torch.pow(d_k, -1/2)"
    with pytest.raises(TypeError):  # sizes are Python ints: torch.pow rejects them
        eval(power, {"torch": torch, "d_k": 4})
    src = generate(spec.get("attention.scaled_dot_product"))
    assert "K.transpose(-1, -2)" in src and "permute" not in src
    assert "math.sqrt(d_k)" in src and "torch.sqrt" not in src


def test_generated_runs_with_leading_batch_axes_and_matches_the_oracle():
    eq = spec.get("attention.scaled_dot_product")
    fn = compiled(eq)
    rng = np.random.default_rng(3)
    n, d_k, d_v = 3, 2, 5
    Q, K, V = (rng.normal(size=(4, 2, n, d)) for d in (d_k, d_k, d_v))
    S = np.where(rng.random((4, 2, n, n)) < 0.3, -np.inf, 0.0)
    (P,) = fn(*(torch.from_numpy(a) for a in (Q, K, V, S)))
    assert P.shape == (4, 2, n, d_v)
    want = Oracle(eq)({"Q": Q, "K": K, "V": V, "S": S}, {"n": n, "d_k": d_k, "d_v": d_v})["P"]
    np.testing.assert_allclose(P.numpy(), want, rtol=1e-12, atol=1e-12)


def test_square_transpose_is_not_a_no_op():
    # a transpose of a square matrix must swap its axes: compare with numpy on an asymmetric H
    eq = spec.get("attention.multi_head")
    fn = compiled(eq)
    rng = np.random.default_rng(5)
    d = 3  # d_e = n = d_k = d_v: every matrix square
    arrays = {
        "H": rng.normal(size=(d, d)), "S": np.zeros((d, d)),
        "W_Q": rng.normal(size=(1, d, d)), "b_Q": rng.normal(size=(1, d, 1)),
        "W_K": rng.normal(size=(1, d, d)), "b_K": rng.normal(size=(1, d, 1)),
        "W_V": rng.normal(size=(1, d, d)), "b_V": rng.normal(size=(1, d, 1)),
        "W_O": rng.normal(size=(d, d)), "b_O": rng.normal(size=(d, 1)),
    }  # fmt: skip
    (A,) = fn(*(torch.from_numpy(arrays[k]) for k in arrays))
    H = arrays["H"]
    Q = H.T @ arrays["W_Q"][0] + arrays["b_Q"][0].T
    K = H.T @ arrays["W_K"][0] + arrays["b_K"][0].T
    V = H.T @ arrays["W_V"][0] + arrays["b_V"][0].T
    Z = Q @ K.T / np.sqrt(d)
    W = np.exp(Z - Z.max(axis=1, keepdims=True))
    W /= W.sum(axis=1, keepdims=True)
    want = (W @ V @ arrays["W_O"]).T + arrays["b_O"]
    np.testing.assert_allclose(A.numpy(), want, rtol=1e-12)


def test_size_only_equation_takes_its_size():
    (S,) = compiled(spec.get("attention.causal_mask"))(3)
    assert S.tolist() == [[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]]


VARIANTS = [f"{eq.id}[{name}]" for eq in spec.select(["attention"]) for name in eq.variant_names]


@pytest.mark.parametrize("variant", VARIANTS)
def test_generated_code_of_every_variant_matches_its_oracle(variant):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from lmspec.verify.compare import POLICY, assert_close
    from lmspec.verify.strategies import examples, size_tuples
    from lmspec.verify.targets import GeneratedTarget, OracleTarget

    eq = spec.get(variant)
    pool = size_tuples(eq, 2, 0)
    oracle, generated = OracleTarget(eq), GeneratedTarget(eq)

    @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def agree(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(pool))))
        assert_close(generated(ex.arrays, ex.sizes), oracle(ex.arrays, ex.sizes), POLICY["float64"],
                     check="generated=oracle", who="generated", reference="oracle")  # fmt: skip

    agree()
