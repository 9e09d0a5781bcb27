"""verify/audit/adapters/torch_optim.py: the built-in audit targets for torch.optim (torch 2.13).

- torch.optim.SGD and torch.optim.AdamW pass their audits (the gradient check included: the built-ins step
  through torch's ``differentiable=True`` path when autograd is to go through them);
- torch.optim.SGD[weight_decay] is torch's L2 step θ − η(g + λθ), returned alone: it passes its audit
  against training.weight_decay through its layout (WEIGHT_DECAY_LAYOUT), the gradient check included;
- torch.optim.Adam with weight_decay is held to training.adamw and is not it: the verdict is ``variant``,
  the coupled (L2) form training.adamw[l2_coupled], asserted on torch itself as well; each form of
  training.adamw carries the invariants that hold for it (torch.optim.Adam's step for l2_coupled);
- each built-in runs the real optimizer's step() (a global step hook sees the optimizer, its
  hyper-parameters and its state), and a wrong mapping (moments swapped, lr or weight_decay not passed,
  the step count off by one) fails.

Numbers come from seeded random draws (NumPy's default_rng) compared with the exact oracle of the spec.
"""

import contextlib

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lmspec import spec
from lmspec.verify.audit import Builtin, audit, builtins, load
from lmspec.verify.audit.adapters import torch_optim
from lmspec.verify.audit.targets import make_target
from lmspec.verify.compare import POLICY, compare
from lmspec.verify.oracle import concrete_shape
from lmspec.verify.runner import PROFILES, checks_for, run_check
from lmspec.verify.strategies import seeded_tensor
from lmspec.verify.targets import GeneratedTarget, OracleTarget

BUILTINS = builtins()
#: Every torch.optim built-in and the equation it is audited against by default.
EXPECTED = {
    "torch.optim.SGD": "training.sgd",
    "torch.optim.SGD[weight_decay]": "training.weight_decay",
    "torch.optim.AdamW": "training.adamw",
    "torch.optim.Adam[weight_decay]": "training.adamw",
}
#: Audited in tests of their own: a difference the audit must report (test_adam_weight_decay_*), a subset
#: of the outputs (test_sgd_weight_decay_*).
OWN_TEST = {"torch.optim.Adam[weight_decay]", "torch.optim.SGD[weight_decay]"}
SIZES = {"d_theta": 7}


def _builtin(name: str) -> Builtin:
    return BUILTINS[name]


def _example(eq_id: str, batch=(2,), seed=0) -> tuple[spec.Equation, dict[str, np.ndarray]]:
    """Seeded arrays for ``eq_id`` at d_θ = 7 (θ, g, m real; s, η, λ, ε, t positive)."""
    eq = spec.get(eq_id)
    rng = np.random.default_rng(seed)
    arrays = {}
    for d in (*eq.inputs, *eq.params):
        shape = concrete_shape(d, SIZES)
        full = (*batch, *shape) if d in eq.inputs else shape
        arrays[d.ascii] = seeded_tensor(rng, d.entry_kind, full, SIZES)
    return eq, arrays


def _run(fn, eq, arrays, layout=None) -> dict[str, np.ndarray]:
    return make_target(fn, eq, name=getattr(fn, "__name__", "target"), layout=layout)(arrays, SIZES)


def _close(got: dict, want: dict) -> bool:
    return all(compare(got[k], want[k], POLICY["float64"]).ok for k in want)


@contextlib.contextmanager
def _steps():
    """Every torch.optim step taken inside: (optimizer class, its hyper-parameters, its state before)."""
    seen = []

    def hook(opt, args, kwargs):
        group = opt.param_groups[0]
        (p,) = group["params"]
        state = {k: v.detach().clone() for k, v in opt.state[p].items()}
        seen.append((type(opt), {k: v for k, v in group.items() if k != "params"}, state))

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


# --- the registry -------------------------------------------------------------------------------------------
def test_the_optim_builtins_and_their_equations():
    here = {name: b.equation for name, b in BUILTINS.items() if b.make.__module__.endswith(".torch_optim")}
    assert here == EXPECTED
    for name in EXPECTED:
        b = _builtin(name)
        assert b.group == "torch" and b.description and not (b.pins or b.constants or b.derive or b.sizes)
        assert b.layout == (torch_optim.WEIGHT_DECAY_LAYOUT if "SGD[" in name else None), name
        eq = spec.get(b.equation)
        mapped = {k for k, _ in b.mapping}
        assert {d.ascii for d in (*eq.inputs, *eq.params, *eq.outputs)} <= mapped, name
    assert dict(_builtin("torch.optim.AdamW").mapping)["eta"] == "lr"
    assert "exp_avg_sq" in dict(_builtin("torch.optim.AdamW").mapping)["s"]
    assert "l2_coupled" in _builtin("torch.optim.Adam[weight_decay]").description
    assert "not returned" in dict(_builtin("torch.optim.SGD[weight_decay]").mapping)["theta_dec"]
    assert load("torch.optim.AdamW") is _builtin("torch.optim.AdamW")


# --- the audits ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(set(EXPECTED) - OWN_TEST))
def test_builtin_passes_its_audit(name):
    report = audit(_builtin(name), profile="quick")
    failed = [f"{c.name}: {c.message}" for c in report.checks if c.status == "fail"]
    assert report.verdict == "pass", failed
    assert report.equation == EXPECTED[name]
    ran = {c.name for c in report.checks if c.status == "pass"}
    assert {"shape", "value=oracle", "value=generated", "property:torch_optimizer_step", "gradient"} <= ran


def test_adam_weight_decay_audit_reports_the_coupled_form():
    """Adam's weight_decay is not AdamW's: the audit fails every value check and AdamW's invariants, and
    its diagnosis confirms training.adamw[l2_coupled]: the values, the gradient and torch.optim.Adam's own
    step (the invariant of that form) hold under it."""
    report = audit(_builtin("torch.optim.Adam[weight_decay]"), profile="quick")
    assert report.verdict == "variant", report.summary
    status = {c.name: c.status for c in report.checks}
    assert status == {
        "shape": "pass",
        "value=oracle": "fail",
        "value=generated": "fail",
        "property:torch_optimizer_step": "fail",  # against torch.optim.AdamW
        "property:decoupled_decay": "fail",
        "gradient": "fail",
    }
    trials = {v.name: v for v in report.variants}
    assert trials["l2_coupled"].matched and trials["l2_coupled"].max_abs < 1e-12
    assert not trials["transformers_legacy"].matched
    assert "matches l2_coupled" in report.summary


# --- the real torch.optim step ------------------------------------------------------------------------------
def test_sgd_runs_torch_step_and_matches_the_oracle():
    eq, arrays = _example("training.sgd")
    with _steps() as seen:
        got = _run(_builtin("torch.optim.SGD").make(), eq, arrays)
    ((cls, group, state),) = seen
    assert cls is torch.optim.SGD and state == {}
    assert group["lr"] == float(arrays["eta"]) and group["momentum"] == 0 and group["weight_decay"] == 0
    assert not group["differentiable"]  # no autograd asked for: the step users run
    assert _close(got, OracleTarget(eq)(arrays, SIZES))


ADAMS = [("torch.optim.AdamW", torch.optim.AdamW), ("torch.optim.Adam[weight_decay]", torch.optim.Adam)]


@pytest.mark.parametrize(("name", "optimizer"), ADAMS)
def test_adam_builtins_run_torch_step_from_the_spec_state(name, optimizer):
    eq, arrays = _example("training.adamw", seed=1)
    with _steps() as seen:
        got = _run(_builtin(name).make(), eq, arrays)
    ((cls, group, state),) = seen
    assert cls is optimizer
    t = float(arrays["t"])
    assert group["lr"] == float(arrays["eta"]) and group["weight_decay"] == float(arrays["lam"])
    assert group["eps"] == float(arrays["eps"]) and tuple(group["betas"]) == (0.9, 0.999)
    assert group["decoupled_weight_decay"] is (optimizer is torch.optim.AdamW)
    assert state["step"].item() == pytest.approx(t - 1) and state["step"].dtype == torch.float64
    np.testing.assert_array_equal(state["exp_avg"].numpy(), arrays["m"])
    np.testing.assert_array_equal(state["exp_avg_sq"].numpy(), arrays["s"])
    form = "training.adamw" if optimizer is torch.optim.AdamW else "training.adamw[l2_coupled]"
    assert _close(got, OracleTarget(spec.get(form))(arrays, SIZES))
    assert _close(got, OracleTarget(eq)(arrays, SIZES)) is (optimizer is torch.optim.AdamW)


def _breaks(attr, value):
    def apply(monkeypatch):
        monkeypatch.setattr(torch_optim, attr, value)

    return apply


#: A wrong mapping inside the built-in: the oracle, given the same arrays, must then disagree.
WRONG = [
    ("torch.optim.SGD", _breaks("HYPER", {"lam": "weight_decay", "eps": "eps"})),  # lr not passed: 1e-3
    ("torch.optim.AdamW", _breaks("STATE", {"m": "exp_avg_sq", "s": "exp_avg"})),  # moments swapped
    ("torch.optim.AdamW", _breaks("HYPER", {"eta": "lr", "eps": "eps"})),  # weight_decay not passed: 1e-2
    ("torch.optim.AdamW", _breaks("BETAS", (0.999, 0.9))),
]


@pytest.mark.parametrize(("name", "perturb"), WRONG, ids=["sgd-lr", "adamw-moments", "adamw-decay", "betas"])
def test_a_wrong_mapping_fails(name, perturb, monkeypatch):
    eq, arrays = _example(_builtin(name).equation, seed=2)
    want = OracleTarget(eq)(arrays, SIZES)
    assert _close(_run(_builtin(name).make(), eq, arrays), want)
    perturb(monkeypatch)
    assert not _close(_run(_builtin(name).make(), eq, arrays), want)


def test_the_step_count_is_the_spec_t():
    """torch counts the step it takes: state['step'] = t − 1 before step() is the spec's t; t itself is a
    step late (the bias corrections 1 − βᵗ⁺¹)."""
    eq, arrays = _example("training.adamw", seed=3)
    want = OracleTarget(eq)(arrays, SIZES)
    late = OracleTarget(eq)({**arrays, "t": arrays["t"] + 1}, SIZES)
    fn = _builtin("torch.optim.AdamW").make()
    assert _close(_run(fn, eq, arrays), want)
    assert _close(_run(fn, eq, {**arrays, "t": arrays["t"] + 1}), late) and not _close(late, want)


# --- gradients through step() -------------------------------------------------------------------------------
def test_gradients_flow_through_the_differentiable_step_and_values_agree():
    """With inputs that require grad the built-in steps with differentiable=True (over a non-leaf copy) and
    autograd reaches θ, g, m and s; the values are those of the default step."""
    _, arrays = _example("training.adamw", batch=(), seed=4)
    fn = _builtin("torch.optim.AdamW").make()
    hyper = {k: float(arrays[k]) for k in ("eta", "lam", "eps", "t")}
    x = {k: torch.tensor(arrays[k], requires_grad=True) for k in ("theta", "g", "m", "s")}
    with _steps() as seen:
        out = fn(**x, **hyper)
        with torch.no_grad():
            plain = fn(**{k: v.detach() for k, v in x.items()}, **hyper)
    assert [group["differentiable"] for _, group, _ in seen] == [True, False]
    for a, b in zip(out, plain, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=1e-13, atol=1e-13)
    grads = torch.autograd.grad(sum(o.sum() for o in out), [x[k] for k in ("theta", "g", "m", "s")])
    # θ_t depends on θ only through the decay: ∂(θ_t + m_t + v_t)/∂θ = 1 − ηλ, entry by entry
    torch.testing.assert_close(grads[0], torch.full_like(grads[0], 1 - hyper["eta"] * hyper["lam"]))
    assert all(g.abs().min() > 0 for g in grads[1:])


# --- SGD with weight decay: the L2 step, returned alone -----------------------------------------------------
def test_sgd_weight_decay_is_torchs_l2_step():
    eq, arrays = _example("training.weight_decay", seed=5)
    b = _builtin("torch.optim.SGD[weight_decay]")
    with _steps() as seen:
        got = _run(b.make(), eq, arrays, layout=b.layout)
    ((cls, group, _),) = seen
    assert cls is torch.optim.SGD and group["weight_decay"] == float(arrays["lam"]) and group["momentum"] == 0
    want = OracleTarget(eq)(arrays, SIZES)
    assert set(got) == {"theta_l2"} and _close(got, {"theta_l2": want["theta_l2"]})
    assert _close(got, {"theta_l2": want["theta_dec"]})  # for SGD the two forms are one update


def test_sgd_weight_decay_audit_checks_the_step_it_returns():
    """Audited through its layout (a subset of the outputs): values, torch's own step and the gradient (its
    cotangent on θ′_L₂ alone) pass; the properties that read the outputs it does not return are skipped."""
    report = audit(_builtin("torch.optim.SGD[weight_decay]"), profile="quick")
    assert report.verdict == "pass", report.summary
    assert report.equation == "training.weight_decay"
    status = {c.name: c.status for c in report.checks}
    for check in ("shape", "value=oracle", "value=generated", "property:torch_optimizer_step", "gradient"):
        assert status[check] == "pass", check
    assert status["property:l2_equals_decoupled_for_sgd"] == "skip"  # reads θ′_dec
    assert status["property:l2_penalty_gradient"] == "skip"  # reads R_λ and g_λ


def test_sgd_weight_decay_without_lam_is_plain_sgd(monkeypatch):
    eq, arrays = _example("training.weight_decay", seed=6)
    want = OracleTarget(eq)(arrays, SIZES)["theta_l2"]
    monkeypatch.setattr(torch_optim, "HYPER", {"eta": "lr"})  # weight_decay not passed: torch's default 0
    b = _builtin("torch.optim.SGD[weight_decay]")
    got = _run(b.make(), eq, arrays, layout=b.layout)
    assert not _close(got, {"theta_l2": want})
    plain = arrays["theta"] - arrays["eta"] * arrays["g"]
    assert _close(got, {"theta_l2": plain})


# --- Adam's weight_decay is the coupled form, on torch itself -----------------------------------------------
def _torch_step(optimizer, theta, g, m, s, lr, weight_decay, eps, t):
    p = torch.nn.Parameter(theta.clone())
    p.grad = g.clone()
    opt = optimizer([p], lr=lr, betas=(0.9, 0.999), eps=eps, weight_decay=weight_decay)
    step = torch.tensor(t - 1.0, dtype=torch.float64)  # torch counts the step it takes
    opt.state[p].update(exp_avg=m.clone(), exp_avg_sq=s.clone(), step=step)
    opt.step()
    return p.detach(), opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]


def test_adam_weight_decay_is_adam_on_the_l2_gradient_and_adamw_is_not():
    """torch.optim.Adam(weight_decay=λ) is Adam without decay on the gradient g + λθ (moments included);
    torch.optim.AdamW(weight_decay=λ) is Adam without decay on g, then −ηλθ, its moments untouched by λ."""
    rng = np.random.default_rng(7)
    theta, g, m = (torch.tensor(rng.uniform(-2, 2, 5)) for _ in range(3))
    s = torch.tensor(rng.uniform(0.1, 2, 5))
    lr, lam, eps, t = 0.25, 0.5, 1e-8, 3.0
    coupled = _torch_step(torch.optim.Adam, theta, g, m, s, lr, lam, eps, t)
    on_l2_gradient = _torch_step(torch.optim.Adam, theta, g + lam * theta, m, s, lr, 0.0, eps, t)
    decoupled = _torch_step(torch.optim.AdamW, theta, g, m, s, lr, lam, eps, t)
    undecayed = _torch_step(torch.optim.Adam, theta, g, m, s, lr, 0.0, eps, t)
    for a, b in zip(coupled, on_l2_gradient, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(decoupled[0], undecayed[0] - lr * lam * theta, rtol=1e-14, atol=1e-14)
    for a, b in zip(decoupled[1:], undecayed[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (coupled[0] - decoupled[0]).abs().max() > 1e-3
    # with no gradient and no moments AdamW only decays; Adam's L2 term is normalised by √v̂ instead
    zero = torch.zeros(5, dtype=torch.float64)
    only_decay = _torch_step(torch.optim.AdamW, theta, zero, zero, zero, lr, lam, eps, 1.0)[0]
    torch.testing.assert_close(only_decay, (1 - lr * lam) * theta, rtol=1e-14, atol=1e-14)
    normalised = _torch_step(torch.optim.Adam, theta, zero, zero, zero, lr, lam, eps, 1.0)[0]
    torch.testing.assert_close(normalised, theta - lr * torch.sign(theta), rtol=1e-7, atol=1e-7)


# --- each form of training.adamw carries the invariants that hold for it ---------------------------------
#: The invariants of each form (P3): torch's own step where torch has the form, the decoupled decay where
#: the decay is decoupled.
FORM_INVARIANTS = {
    "training.adamw": ("AdamW", {"torch_optimizer_step", "decoupled_decay"}),
    "training.adamw[l2_coupled]": ("Adam", {"torch_optimizer_step"}),
    "training.adamw[transformers_legacy]": (None, {"decoupled_decay"}),
}


def _properties(eq, target) -> dict:
    checks = checks_for(eq, PROFILES["quick"], 0, target)
    return {c.name: run_check(c, PROFILES["quick"], 0) for c in checks if c.name.startswith("property:")}


@pytest.mark.parametrize("eq_id", sorted(FORM_INVARIANTS))
def test_each_adamw_form_satisfies_its_own_invariants(eq_id):
    optimizer, names = FORM_INVARIANTS[eq_id]
    eq = spec.get(eq_id)
    assert {inv.name for inv in eq.invariants} == names
    steps = [inv.options["optimizer"] for inv in eq.invariants if inv.name == "torch_optimizer_step"]
    assert steps == ([optimizer] if optimizer else [])
    for target in (OracleTarget(eq), GeneratedTarget(eq)):
        results = _properties(eq, target)
        assert set(results) == {f"property:{n}" for n in names}
        for name, result in results.items():
            assert result.passed, f"{eq_id} on {target.name}, {name}: {result.message}"


def test_torch_adam_step_tells_the_coupled_form_from_the_decoupled_one():
    """The l2_coupled form's torch step (torch.optim.adam's functional path, decoupled_weight_decay=False)
    rejects the decoupled form's values, and AdamW's rejects the coupled form's."""
    coupled, decoupled = spec.get("training.adamw[l2_coupled]"), spec.get("training.adamw")
    wrong = _properties(coupled, OracleTarget(decoupled))["property:torch_optimizer_step"]
    assert not wrong.passed and "differs from torch.optim.Adam" in wrong.message
    wrong = _properties(decoupled, OracleTarget(coupled))["property:torch_optimizer_step"]
    assert not wrong.passed and "differs from torch.optim.AdamW" in wrong.message
