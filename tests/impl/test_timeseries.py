"""impl/ timeseries: TST's input and masked loss, PatchTST's patching by hand, the two models, and wrong
implementations the verifier catches."""

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from jaxtyping import Bool, Float, TypeCheckError
from torch import Tensor

from lmspec import impl, spec
from lmspec.impl._registry import checked
from lmspec.impl.timeseries import TST, PatchTST, input_, masked_mse, num_patches, pad_end, patching
from lmspec.verify import strategies
from lmspec.verify._errors import PropertyViolation
from lmspec.verify.compare import POLICY
from lmspec.verify.properties import properties_of
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.strategies import size_tuples
from lmspec.verify.targets import ImplTarget

torch.set_default_dtype(torch.float64)
# distinct sizes: batch 2, n 5 steps, m 3 variables, d_e 4, n_max 7
B, n, m, d_e, n_max = 2, 5, 3, 4, 7


def test_input_by_hand():
    X = torch.tensor([[[1.0, 0.0], [2.0, 5.0], [3.0, 1.0]]])  # one series: n = 3 steps of m = 2 variables
    W_p, b_p = torch.tensor([[1.0, -1.0]]), torch.tensor([10.0])
    Lambda = torch.tensor([[0.5, 0.25, 0.125, 9.0]])
    assert input_(X, W_p, b_p, Lambda).tolist() == [[[11.5], [7.25], [12.125]]]
    W_p4 = torch.tensor([[1.0, -1.0]] * 4)  # d_e = 4: the projection is scaled by √4 = 2
    scaled = input_(X, W_p4, torch.zeros(4), torch.zeros(4, 3), scale=True)
    assert scaled[0, :, 0].tolist() == [2.0, -6.0, 4.0]
    with pytest.raises(ValueError, match="n=3 time steps but only n_max=2 positions"):
        input_(X, W_p, b_p, Lambda[:, :2])


def test_masked_mse_by_hand_and_the_empty_case():
    X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).T  # (n = 3, m = 2)
    X_hat = torch.tensor([[2.0, 2.0, 0.0], [4.0, 9.0, 6.0]]).T  # errors 1, 0, −3 / 0, 4, 0
    mask = torch.tensor([[True, False, True], [False, True, False]]).T
    assert masked_mse(X, X_hat, mask).item() == (1 + 9 + 16) / 3
    assert masked_mse(X, X_hat, ~mask).item() == 0.0
    assert masked_mse(X, X_hat, torch.zeros_like(mask)).item() == 0.0  # nothing masked: 0, not NaN
    batch = masked_mse(
        torch.stack([X, X]), torch.stack([X_hat, X_hat]), torch.stack([mask, torch.zeros_like(mask)])
    )
    assert batch.tolist() == [26 / 3, 0.0]


def test_patching_by_hand():
    # L_in = 5, P = 2, S = 3: x̃ = (x1..x5, x5, x5, x5), N = 3 patches (x1,x2), (x4,x5), (x5,x5)
    X = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 20.0, 30.0, 40.0, 50.0]]).T  # (L_in, m = 2)
    W_p = torch.eye(2)  # d_e = 2 reads the patch itself
    U = patching(X, W_p, torch.zeros(2, 3), 3, torch.zeros(2))
    assert U.shape == (2, 3, 2)  # (m, N, d_e)
    assert U[0].tolist() == [[1, 2], [4, 5], [5, 5]]
    assert U[1].tolist() == [[10, 20], [40, 50], [50, 50]]
    no_pad = patching(X, W_p, torch.tensor([[0.5, 0.25], [0.0, 0.0]]), 3, padding=False)
    assert no_pad[0].tolist() == [[1.5, 2], [4.25, 5]]
    # drop_start (transformers' PatchTSTPatchify): L_in = 6, r = 4 mod 3 = 1, x1 left out: (x2,x3), (x5,x6)
    X6 = torch.arange(1.0, 7.0).reshape(6, 1)
    drop_start = patching(X6, torch.eye(2)[:1], torch.zeros(1, 2), 3, padding=False, drop_start=True)
    assert drop_start[0].tolist() == [[2], [5]]  # the first value of each patch
    with pytest.raises(ValueError, match="drop_start=True leaves out the start instead of padding"):
        patching(X6, W_p[:, :2], torch.zeros(2, 3), 3, drop_start=True)
    with pytest.raises(ValueError, match="the series gives 3 patches, W_pos has N=4 positions"):
        patching(X, W_p, torch.zeros(2, 4), 3)
    assert pad_end(torch.tensor([[1.0, 2.0]]), 2).tolist() == [[1, 2, 2, 2]]


def test_num_patches():
    assert num_patches(5, 2, 3) == 3 and num_patches(5, 2, 3, padding=False) == 2
    assert num_patches(512, 16, 8) == 64  # PatchTST's look-back 512, P = 16, S = 8: ⌊496/8⌋ + 2
    with pytest.raises(ValueError, match="need 0 < P ≤ L_in and S > 0, found L_in=3, P=4, S=1"):
        num_patches(3, 4, 1)


def test_runtime_checks_reject_a_wrong_shape():
    with pytest.raises(TypeCheckError, match="mask"):
        masked_mse(torch.zeros(n, m), torch.zeros(n, m), torch.zeros(n, m + 1, dtype=torch.bool))


def test_tst_reconstructs_and_its_loss_scores_masked_entries_only():
    torch.manual_seed(0)
    model = TST(m, d_e, M=2, L=2, d_f=11, n_max=n_max)
    X = torch.randn(B, n, m)
    assert model(X).shape == (B, n, m)
    params = model.spec_params()
    assert params["W_p"].shape == (d_e, m) and params["W_out"].shape == (m, d_e)
    assert sum(p.numel() for p in params.values()) == sum(p.numel() for p in model.parameters())
    mask = torch.rand(B, n, m) < 0.3
    mask[0, 0, 0] = True
    X_hat = model(X.masked_fill(mask, 0.0))
    want = ((X_hat - X) ** 2)[mask].mean()  # every masked entry of the batch
    torch.testing.assert_close(model.loss(X, mask), want)
    assert model.loss(X, torch.zeros_like(mask)).item() == 0.0  # nothing masked scores 0


def test_patchtst_is_channel_independent():
    torch.manual_seed(0)
    model = PatchTST(L_in=13, P=4, S=3, d_e=d_e, M=2, L=2, d_f=11, T=6)
    assert model.N == (13 - 4) // 3 + 2
    X = torch.randn(B, 13, m)
    Y = model(X)
    assert Y.shape == (B, 6, m)
    for i in range(m):  # each variable's forecast is the forecast of that variable alone
        torch.testing.assert_close(Y[..., i], model(X[..., i : i + 1])[..., 0])
    assert sum(p.numel() for p in model.spec_params().values()) == sum(p.numel() for p in model.parameters())


def test_models_reject_bad_sizes():
    with pytest.raises(ValueError, match="TST: sizes must be positive, found d_x=0"):
        TST(0, d_e, 2, 2, 11, n_max)
    with pytest.raises(ValueError, match="need 0 < P ≤ L_in"):
        PatchTST(L_in=3, P=4, S=1, d_e=d_e, M=2, L=1, d_f=11, T=2)


# --- the verifier -----------------------------------------------------------------------------------
@checked
def mse_over_every_entry(
    X: Float[Tensor, "*batch n d_x"], X_hat: Float[Tensor, "*batch n d_x"], mask: Bool[Tensor, "*batch n d_x"]
) -> Float[Tensor, "*batch"]:
    """Forgets the mask: the mean over every entry."""
    return ((X_hat - X) ** 2).mean(dim=(-2, -1))


@checked
def mse_nan_when_empty(
    X: Float[Tensor, "*batch n d_x"], X_hat: Float[Tensor, "*batch n d_x"], mask: Bool[Tensor, "*batch n d_x"]
) -> Float[Tensor, "*batch"]:
    """torch's mean of an empty selection: NaN when nothing is masked (the variant empty_nan)."""
    squared = torch.where(mask, (X_hat - X) ** 2, 0.0).sum(dim=(-2, -1))
    return squared / mask.sum(dim=(-2, -1))


@checked
def patching_across_variables(
    X: Float[Tensor, "*batch L_in d_x"],
    W_p: Float[Tensor, "d_e P"],
    b_p: Float[Tensor, " d_e"],
    W_pos: Float[Tensor, "d_e N_p"],
    S_p: int,
) -> Float[Tensor, "*batch d_x N_p d_e"]:
    """Normalises each time step across the variables first: the variables are no longer independent."""
    centred = X - X.mean(dim=-1, keepdim=True)
    return impl.implementation("timeseries.patching")(centred, W_p, W_pos, S_p, b_p)


WRONG = [
    ("mean over every entry", "timeseries.masked_mse", mse_over_every_entry, "masked_entries_only"),
    ("NaN when nothing is masked", "timeseries.masked_mse", mse_nan_when_empty, "masked_entries_only"),
    ("mixes the variables", "timeseries.patching", patching_across_variables, "channel_independence"),
]


def property_violations(eq_id: str, name: str, fn, examples: int = 6) -> list[str]:
    """The messages of the property ``name`` on ``fn`` over a few drawn examples (no shrinking)."""
    eq = spec.get(eq_id)
    target = ImplTarget(eq, fn, name="wrong")
    prop, options = next((p, o) for p, o in properties_of(eq) if p.name == name)
    pool = size_tuples(eq, 2, 0)
    caught: list[str] = []

    @settings(max_examples=examples, phases=[Phase.generate], database=None, deadline=None)
    @given(st.data())
    def run(data):
        example = data.draw(strategies.examples(eq, data.draw(st.sampled_from(pool))))
        try:
            prop.check(eq, target, example, data, options, POLICY["float64"])
        except PropertyViolation as exc:
            caught.append(str(exc))

    run()
    return caught


@pytest.mark.parametrize(("bug", "eq_id", "fn", "name"), WRONG, ids=[w[0] for w in WRONG])
def test_wrong_implementation_violates_the_property(bug, eq_id, fn, name):
    caught = property_violations(eq_id, name, fn)
    assert caught and all(msg.startswith(f"wrong violates {name}: ") for msg in caught)
    assert not property_violations(eq_id, name, impl.implementation(eq_id))


def test_a_wrong_loss_fails_against_the_oracle():
    eq = spec.get("timeseries.masked_mse")
    target = ImplTarget(eq, mse_over_every_entry, name="wrong[every entry]")
    check = next(c for c in checks_for(eq, PROFILES["quick"], 0, target) if c.name == "impl=generated")
    result = run_check(check, PROFILES["quick"], 0)
    assert not result.passed and result.message.startswith("wrong[every entry]: loss")


def test_named_variants_against_the_impl():
    """The variant impl/ declares (patching's no_bias) passes its checks; held to the variants it does not
    implement (audited as them: the target given), the impl fails: the verifier tells the forms apart."""

    def passes(eq_id: str, check: str = "impl=generated") -> bool:
        eq = spec.get(eq_id)
        target = None if eq_id.endswith("[no_bias]") else ImplTarget(eq, impl.implementation(eq.variant_of))
        found = next(c for c in checks_for(eq, PROFILES["quick"], 0, target) if c.name == check)
        return run_check(found, PROFILES["quick"], 0).passed

    assert passes("timeseries.patching[no_bias]")  # b_p left out
    assert not passes("timeseries.input[scaled]")  # the impl's default is the paper's form, unscaled
    # 0, not NaN, when nothing is masked
    assert not passes("timeseries.masked_mse[empty_nan]", "property:masked_entries_only")


def test_impl_passes_the_verifier():
    results = verify(spec.select(["timeseries"]), "quick", 2)
    failures = [f"{r.equation} {r.check}: {r.message}" for r in results if not r.passed]
    assert not failures
    assert len(results) == 12
