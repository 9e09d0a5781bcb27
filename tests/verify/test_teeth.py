"""Evidence that the verifier has teeth: wrong attention implementations fail, naming the check that
caught them; the correct impl/ passes under ten seeds.

Each wrong implementation below is a real bug class, written the way people write it.
"""

import math

import pytest
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from lmspec import impl, spec
from lmspec.impl._registry import checked
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.targets import ImplTarget


def _heads(Q, K, V, S, W_O, b_O, *, scale, merge_transpose=True, bias=True):
    scores = Q @ K.transpose(-2, -1) / scale
    if S is not None:
        scores = scores + S.unsqueeze(-3)
    w = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    P = w @ V  # (*batch, M, n, d_v)
    if merge_transpose:
        P = P.transpose(-3, -2).flatten(-2)
    else:  # the classic bug: reshape (M, n, d_v) -> (n, M*d_v) without moving the head axis
        P = P.reshape(*P.shape[:-3], P.shape[-2], -1)
    return P @ W_O + b_O if bias else P @ W_O


def _mha(scale_by, merge_transpose=True, bias=True):
    @checked
    def multi_head(
        H: Float[Tensor, "*batch n d_e"],
        W_Q: Float[Tensor, "M d_e d_k"],
        b_Q: Float[Tensor, "M d_k"],
        W_K: Float[Tensor, "M d_e d_k"],
        b_K: Float[Tensor, "M d_k"],
        W_V: Float[Tensor, "M d_e d_v"],
        b_V: Float[Tensor, "M d_v"],
        W_O: Float[Tensor, "M*d_v d_e"],
        b_O: Float[Tensor, " d_e"],
        S: Float[Tensor, "*#batch n n"] | None = None,
    ) -> Float[Tensor, "*batch n d_e"]:
        Q, K, V = impl.implementation("attention.projections")(H, W_Q, b_Q, W_K, b_K, W_V, b_V)
        scale = math.sqrt(scale_by(H.shape[-1], Q.shape[-1]))
        return _heads(Q, K, V, S, W_O, b_O, scale=scale, merge_transpose=merge_transpose, bias=bias)

    return multi_head


scale_by_d_e = _mha(lambda d_e, d_k: d_e)
merged_without_transpose = _mha(lambda d_e, d_k: d_k, merge_transpose=False)
missing_output_bias = _mha(lambda d_e, d_k: d_k, bias=False)


@checked
def softmax_over_queries(Z: Float[Tensor, "*batch n n"]) -> Float[Tensor, "*batch n n"]:
    return torch.softmax(Z, dim=-2).nan_to_num(0.0)


@checked
def causal_off_by_one(n: int, *, dtype: torch.dtype = torch.float32) -> Float[Tensor, "n n"]:
    # masks the diagonal too: token i may no longer see itself
    return torch.zeros(n, n, dtype=dtype).masked_fill(torch.ones(n, n).triu(0).bool(), -math.inf)


@checked
def inverted_polarity(
    keep: Bool[Tensor, "*batch n"], *, dtype: torch.dtype = torch.float32
) -> Float[Tensor, "*batch n n"]:
    # treats the mask as "True = ignore" although it means "True = attend"
    n = keep.shape[-1]
    row = torch.zeros(keep.shape, dtype=dtype).masked_fill(keep, -math.inf)
    return row.unsqueeze(-2).expand(*keep.shape[:-1], n, n)


WRONG = [
    # (name, equation, implementation, checks that must catch it)
    ("scale by √d_e", "attention.multi_head", scale_by_d_e,
     {"impl=oracle", "impl=generated", "property:single_head"}),
    ("softmax over the query axis", "attention.softmax_rows", softmax_over_queries,
     {"impl=oracle", "impl=generated", "property:softmax_rows_sum_to_one"}),
    ("causal mask off by one", "attention.causal_mask", causal_off_by_one,
     {"impl=oracle", "impl=generated"}),
    ("heads merged without the transpose", "attention.multi_head", merged_without_transpose,
     {"impl=oracle", "impl=generated", "property:heads_concat", "property:permutation_equivariance"}),
    ("missing output bias", "attention.multi_head", missing_output_bias,
     {"impl=oracle", "impl=generated", "property:heads_concat", "property:single_head"}),
    ("inverted mask polarity", "attention.padding_mask", inverted_polarity,
     {"impl=oracle", "impl=generated"}),
]  # fmt: skip


@pytest.mark.parametrize(("bug", "eq_id", "fn", "catchers"), WRONG, ids=[w[0] for w in WRONG])
def test_wrong_implementation_fails_naming_the_check(bug, eq_id, fn, catchers):
    eq = spec.get(eq_id)
    target = ImplTarget(eq, fn, name=f"wrong[{bug}]")
    results = [run_check(c, PROFILES["default"], 0) for c in checks_for(eq, PROFILES["default"], 0, target)]
    failed = {r.check for r in results if not r.passed}
    assert catchers <= failed, f"{bug}: expected {sorted(catchers)} to fail, failed {sorted(failed)}"
    # the comparisons with the generated code prove the spec itself is not what broke
    assert all(r.passed for r in results if r.check == "generated=oracle")
    for r in results:
        if not r.passed:
            assert r.message and r.counterexample["sizes"], r
            if r.check.startswith("impl="):
                assert f"wrong[{bug}]" in r.message


def test_a_failure_reports_the_shrunk_counterexample():
    eq = spec.get("attention.softmax_rows")
    target = ImplTarget(eq, softmax_over_queries, name="queries")
    check = next(c for c in checks_for(eq, PROFILES["default"], 0, target) if c.name == "impl=oracle")
    r = run_check(check, PROFILES["default"], 0)
    assert not r.passed
    assert r.counterexample["sizes"]["n"] >= 2  # n = 1 cannot show the bug
    assert r.message.startswith("queries: Y[")
    assert r.max_abs is not None and r.max_abs > 1e-3


@pytest.mark.parametrize("seed", range(10))
def test_correct_impl_passes_under_ten_seeds(seed):
    results = verify(spec.select(["attention"]), "quick", seed)
    failures = [f"{r.equation} {r.check}: {r.message}" for r in results if not r.passed]
    assert not failures
    assert len(results) == 46  # 35, and the fast paths of scaled_dot_product (5) and multi_head (6)
