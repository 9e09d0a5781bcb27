"""Built-in targets of what users call on a transformers language model (verify/audit/adapters/hf_lm.py,
transformers 5.23): the losses GPT2LMHeadModel(…, labels=…) and BertForMaskedLM(…, labels=…), the
TemperatureLogitsWarper and TopKLogitsWarper, and one step of GPT2LMHeadModel.generate.

Each is audited to its verdict; each really runs transformers' code (spied); a wrong mapping is caught; and
every difference from the spec the built-ins document is asserted on transformers itself, on tiny models with
random weights (nothing is downloaded): the losses are means where the tutorial sums (the spec's variants
gpt2.loss[mean] and bert.mlm_loss[mean], which the built-ins are held to), GPT-2's loss and generate's
distribution are taken in float32, generate gives no gradient. The last two the built-ins declare
(precision="float32", no_gradient): their audits pass, and without the declarations they fail by exactly
those differences."""

import math

import numpy as np
import pytest
import torch
import transformers
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from transformers.generation.utils import GenerationMixin
from transformers.loss import loss_utils

from lmspec import spec
from lmspec.impl.bert import mlm_loss as spec_mlm_loss
from lmspec.impl.gpt2 import loss as spec_gpt2_loss
from lmspec.impl.gpt2 import next_token as spec_next_token
from lmspec.impl.lm import temperature as spec_temperature
from lmspec.impl.lm import top_k as spec_top_k
from lmspec.verify._errors import PropertyViolation
from lmspec.verify.audit import audit, builtins
from lmspec.verify.audit.adapters import hf_lm, mapping_markdown
from lmspec.verify.compare import POLICY, compare
from lmspec.verify.oracle import Oracle
from lmspec.verify.properties import PROPERTIES, properties_of
from lmspec.verify.runner import Profile
from lmspec.verify.strategies import examples
from lmspec.verify.targets import GeneratedTarget

transformers.logging.set_verbosity_error()

LM = {name: b for name, b in builtins().items() if b.make.__module__.rsplit(".", 1)[1] == "hf_lm"}
EQUATIONS = {
    "transformers.GPT2LMHeadModel[labels]": "gpt2.loss[mean]",
    "transformers.BertForMaskedLM[labels]": "bert.mlm_loss[mean]",
    "transformers.TemperatureLogitsWarper": "lm.temperature",
    "transformers.TopKLogitsWarper": "lm.top_k",
    "transformers.GPT2LMHeadModel.generate": "gpt2.generate",
}
#: What the built-ins declare: the precision transformers computes in whatever the model's dtype (with the
#: reason the report gives), and why it gives no gradient.
DECLARED = {
    "transformers.GPT2LMHeadModel[labels]": (
        "float32",
        "transformers' ForCausalLMLoss takes logits.float()",
        None,
    ),
    "transformers.GPT2LMHeadModel.generate": (
        "float32",
        "GenerationMixin._sample takes outputs.logits[:, −1].to(dtype=torch.float32)",
        "GenerationMixin.generate is @torch.no_grad()",
    ),
}
#: The checks the float64 audit of each declaring built-in's callable fails WITHOUT the declarations (audited
#: as a plain annotated function), and those it may fail besides (a difference a property sees too).
UNDECLARED_FAILS = {
    # ForCausalLMLoss computes in float32 (logits.float()): a float64 audit sees float32's rounding
    "transformers.GPT2LMHeadModel[labels]": (
        {"value=oracle", "value=generated"},
        {"property:shifted_loss"},  # log v for uniform predictions, in float32
    ),
    "transformers.GPT2LMHeadModel.generate": (
        {"value=oracle", "value=generated", "gradient"},
        {"property:next_token_distribution"},  # p sums to 1 in float32 only
    ),
}
#: quick, without shrinking a failure (the tests that expect one only need it found)
NO_SHRINK = Profile("quick-noshrink", 2, 2, 4, 3, 0)

F64 = torch.float64


def _close(got: torch.Tensor, want: torch.Tensor, dtype: str = "float64") -> bool:
    return compare(got.detach().double().numpy(), want.detach().double().numpy(), POLICY[dtype]).ok


def _probabilities(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, dtype=F64, generator=g), dim=-1)


def _ids(*shape: int, v: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, v, shape, generator=torch.Generator().manual_seed(seed))


def _tiny_gpt2(v: int = 11) -> transformers.GPT2LMHeadModel:
    config = transformers.GPT2Config(
        n_embd=8, n_head=2, n_layer=1, n_positions=16, vocab_size=v, bos_token_id=None, eos_token_id=None,
        attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).to(F64).eval()


def _tiny_bert(v: int = 11) -> transformers.BertForMaskedLM:
    config = transformers.BertConfig(
        hidden_size=8, num_attention_heads=2, num_hidden_layers=1, intermediate_size=16, vocab_size=v,
        max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.BertForMaskedLM(config).to(F64).eval()


def _spy(monkeypatch, owner, attr: str, calls: list, scale: float = 1.0):
    """Replace ``owner.attr`` by a wrapper that records its calls and scales a tensor result."""
    original = getattr(owner, attr)

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        out = original(*args, **kwargs)
        return out * scale if scale != 1.0 else out

    monkeypatch.setattr(owner, attr, spy)


# --- registration -------------------------------------------------------------------------------------------
def test_the_language_model_targets_are_registered_with_their_equations():
    assert {name: b.equation for name, b in LM.items()} == EQUATIONS
    for name, b in LM.items():
        eq = spec.get(b.equation)
        assert b.group == "hf" and len(b.description) > 100, name
        mapped = {symbol.split(" ")[0] for symbol, _ in b.mapping}
        assert {d.ascii for d in (*eq.inputs, *eq.params, *eq.outputs)} <= mapped | {"k_top"}, name
    order = list(builtins())
    assert order.index("transformers.ViTLayer") < order.index("transformers.GPT2LMHeadModel[labels]")
    declared = {n: (b.precision, b.precision_reason, b.no_gradient) for n, b in LM.items() if b.precision}
    assert declared == DECLARED
    assert all(b.no_gradient is None for n, b in LM.items() if n not in DECLARED)


def test_the_mapping_docs_print_the_declarations():
    text = mapping_markdown()
    assert "compared at float32's tolerance: transformers' ForCausalLMLoss takes logits.float()" in text
    assert "gradient not checked: GenerationMixin.generate is @torch.no_grad()" in text


# --- the audit ---------------------------------------------------------------------------------------------
#: Why each audit skips its gradient check: a loss takes the distribution Ŷ, which the gradient check does
#: not differentiate; generate declares it gives none.
SKIPPED = {
    "transformers.GPT2LMHeadModel[labels]": "the equation has no real-valued inputs to differentiate",
    "transformers.BertForMaskedLM[labels]": "the equation has no real-valued inputs to differentiate",
    "transformers.GPT2LMHeadModel.generate": "declared by the built-in: GenerationMixin.generate is "
    "@torch.no_grad()",
}


@pytest.mark.parametrize("name", sorted(EQUATIONS))
def test_audit_of_the_builtin(name):
    """Every built-in passes its float64 audit; the two that declare float32 are compared at float32's
    tolerance (and the report says so), the others at float64's."""
    report = audit(name, profile="quick", diagnose=False)
    assert report.equation == EQUATIONS[name] and report.dtype == "float64"
    status = {c.name: c.status for c in report.checks}
    assert report.verdict == "pass", {c.name: c.message for c in report.checks}
    assert {"shape", "value=oracle", "value=generated"} <= {c for c, s in status.items() if s == "pass"}
    skipped = {c.name: c.message for c in report.checks if c.status == "skip"}
    assert skipped == ({"gradient": SKIPPED[name]} if name in SKIPPED else {})
    tolerance = POLICY["float32" if name in DECLARED else "float64"]
    compared = {(c.atol, c.rtol) for c in report.checks if c.status == "pass"}
    assert compared == {(tolerance.atol, tolerance.rtol)}
    precision = [note for note in report.notes if note.startswith("compared at")]
    if name in DECLARED:
        assert precision == [
            f"compared at float32's tolerance: {name} computes in float32 whatever its inputs' dtype "
            f"({DECLARED[name][1]})"
        ]
    else:
        assert precision == []
    if name == "transformers.GPT2LMHeadModel[labels]":  # the spec's mean variant, its invariant included
        assert status["property:shifted_loss"] == "pass"


@pytest.mark.parametrize("name", sorted(UNDECLARED_FAILS))
def test_without_its_declarations_the_builtin_fails_by_float32_and_no_gradient(name):
    """The same callable audited as a plain (annotated) function, with no declaration, fails the float64
    audit: its values by float32's rounding alone (nothing beyond float32's tolerance), and generate's
    gradient, which it does not give. So the declarations are what makes the audits pass, and nothing else."""
    must, may = UNDECLARED_FAILS[name]
    report = audit(LM[name].make(), as_=EQUATIONS[name], profile=NO_SHRINK, name=name, diagnose=False)
    status = {c.name: c.status for c in report.checks}
    failed = {c for c, s in status.items() if s == "fail"}
    assert must <= failed <= must | may, {c.name: c.message for c in report.checks}
    assert report.verdict == "fail" and not any(n.startswith("compared at") for n in report.notes)
    f32 = POLICY["float32"]
    for check in report.checks:
        if check.status == "fail" and check.name.startswith("value"):
            assert check.max_rel < f32.rtol and check.max_abs < f32.atol, (check.name, check.message)


# --- the spec's mean variants (what the loss built-ins are held to) -----------------------------------------
def test_the_mean_variants_divide_the_tutorials_sums_by_their_counts():
    """gpt2.loss[mean] is gpt2.loss / (n − 1), NaN at n = 1; bert.mlm_loss[mean] is bert.mlm_loss / |𝓜|,
    NaN when 𝓜 is empty (0/0, as F.cross_entropy gives when every target is ignored); impl/ agrees."""
    Y, k = _probabilities(1, 4, 3, seed=11)[0].numpy(), np.array([2, 0, 1, 1])
    sizes = {"v": 3, "n": 4}
    total = Oracle(spec.get("gpt2.loss"))({"Y_hat": Y.T, "k": k}, sizes)["loss"]
    mean = Oracle(spec.get("gpt2.loss[mean]"))({"Y_hat": Y.T, "k": k}, sizes)["loss"]
    assert mean == pytest.approx(total / 3, rel=1e-14)
    one = Oracle(spec.get("gpt2.loss[mean]"))({"Y_hat": Y.T[:, :1], "k": k[:1]}, {"v": 3, "n": 1})["loss"]
    assert np.isnan(one)
    sel = np.array([1, 0, 1, 1])
    arrays = {"Y_hat": Y.T, "k": k, "sel": sel}
    total = Oracle(spec.get("bert.mlm_loss"))(arrays, sizes)["loss"]
    mean = Oracle(spec.get("bert.mlm_loss[mean]"))(arrays, sizes)["loss"]
    assert mean == pytest.approx(total / 3, rel=1e-14)
    empty = Oracle(spec.get("bert.mlm_loss[mean]"))({**arrays, "sel": 0 * sel}, sizes)["loss"]
    assert np.isnan(empty)
    Yt, kt = torch.from_numpy(Y)[None], torch.from_numpy(k)[None]
    torch.testing.assert_close(spec_gpt2_loss(Yt, kt, mean=True), spec_gpt2_loss(Yt, kt) / 3)
    assert torch.isnan(spec_gpt2_loss(Yt[:, :1], kt[:, :1], mean=True)).all()
    selt = torch.from_numpy(sel.astype(bool))[None]
    torch.testing.assert_close(spec_mlm_loss(Yt, kt, selt, mean=True), spec_mlm_loss(Yt, kt, selt) / 3)
    assert torch.isnan(spec_mlm_loss(Yt, kt, torch.zeros_like(selt), mean=True)).all()


def _shifted_loss_holds(eq_id: str, options: dict, n: int) -> None:
    """shifted_loss with ``options`` on ``eq_id``'s generated code, at v = 5 and the given n."""
    eq = spec.get(eq_id)
    target = GeneratedTarget(eq)

    @settings(max_examples=4, deadline=None, database=None, phases=[Phase.generate])
    @given(st.data())
    def run(data):
        ex = data.draw(examples(eq, {"v": 5, "n": n}))
        PROPERTIES["shifted_loss"].check(eq, target, ex, data, options, POLICY["float64"])

    run()


def test_the_mean_variant_declares_shifted_loss_with_the_mean_option():
    """gpt2.loss[mean] has the sum's invariant back, with mean: uniform predictions give log v (NaN at
    n = 1); the option tells the mean from the sum both ways."""
    (mean_options,) = [o for p, o in properties_of(spec.get("gpt2.loss[mean]")) if p.name == "shifted_loss"]
    (sum_options,) = [o for p, o in properties_of(spec.get("gpt2.loss")) if p.name == "shifted_loss"]
    assert mean_options == {**sum_options, "mean": True}
    for n in (1, 4):  # n = 1: nothing is predicted, NaN
        _shifted_loss_holds("gpt2.loss[mean]", mean_options, n)
    with pytest.raises(PropertyViolation, match=r"predictions do not give log v = 1\.60944 \(the mean"):
        _shifted_loss_holds("gpt2.loss", mean_options, 4)  # the sum, (n − 1) log v
    with pytest.raises(PropertyViolation, match=r"predictions do not give \(n − 1\) log v = 4\.82831"):
        _shifted_loss_holds("gpt2.loss[mean]", sum_options, 4)
    with pytest.raises(PropertyViolation, match=r"give NaN \(the mean over no predicted token at n = 1"):
        _shifted_loss_holds("gpt2.loss", mean_options, 1)  # the sum's empty 0


# --- GPT2LMHeadModel(..., labels=...) -----------------------------------------------------------------------
def test_gpt2_lm_head_model_shifts_inside_takes_the_mean_in_float32():
    """On a real GPT2LMHeadModel: labels = input_ids are shifted inside; .loss is the mean over the n − 1
    predictions (the spec's sum / (n − 1)) taken in float32 (ForCausalLMLoss's logits.float()), a batch's
    loss is the mean over all its predicted tokens, and one token gives NaN (the spec's empty sum is 0)."""
    model, n = _tiny_gpt2(), 5
    ids = _ids(2, n, v=11)
    out = model(ids, labels=ids)
    spec_sum = spec_gpt2_loss(torch.softmax(out.logits, dim=-1), ids)  # (2,): the spec's per-sequence sum
    assert out.loss.dtype == torch.float32 and out.logits.dtype == F64
    torch.testing.assert_close(out.loss.double(), spec_sum.sum() / (2 * (n - 1)), rtol=1e-6, atol=1e-6)
    one = model(ids[:1], labels=ids[:1]).loss
    torch.testing.assert_close(one.double() * (n - 1), spec_sum[0], rtol=1e-6, atol=1e-6)
    assert not math.isclose(one.item(), spec_sum[0].item(), rel_tol=1e-3)  # a factor n − 1 = 4
    assert torch.isnan(model(ids[:1, :1], labels=ids[:1, :1]).loss)
    assert spec_gpt2_loss(torch.softmax(out.logits[:1, :1], dim=-1), ids[:1, :1]).item() == 0


def test_gpt2_lm_head_model_computes_its_loss_with_for_causal_lm_loss(monkeypatch):
    """GPT2LMHeadModel.forward(labels=...) calls self.loss_function, which is ForCausalLMLoss (looked up
    in LOSS_MAPPING), with its logits, the unshifted labels and the vocabulary size; its result is .loss."""
    model, calls = _tiny_gpt2(), []
    monkeypatch.setitem(loss_utils.LOSS_MAPPING, "ForCausalLM", _recording(loss_utils.ForCausalLMLoss, calls))
    ids = _ids(1, 4, v=11)
    out = model(ids, labels=ids)
    assert len(calls) == 1
    (logits, labels), kwargs = calls[0]
    assert logits is out.logits and torch.equal(labels, ids) and kwargs["vocab_size"] == 11
    assert out.loss == loss_utils.ForCausalLMLoss(out.logits, ids, 11)


def _recording(fn, calls: list, scale: float = 1.0):
    def recorded(*args, **kwargs):
        calls.append((args, kwargs))
        return fn(*args, **kwargs) * scale

    return recorded


def test_the_gpt2_loss_builtin_runs_the_models_forward_and_its_loss(monkeypatch):
    fn = LM["transformers.GPT2LMHeadModel[labels]"].make()
    Y, k = _probabilities(2, 5, 7), _ids(2, 5, v=7)
    before = fn(Y, k)
    torch.testing.assert_close(before.double() * 4, spec_gpt2_loss(Y, k), rtol=1e-6, atol=1e-6)
    forwards, losses = [], []
    _spy(monkeypatch, transformers.GPT2LMHeadModel, "forward", forwards)
    monkeypatch.setitem(
        loss_utils.LOSS_MAPPING, "ForCausalLM", _recording(loss_utils.ForCausalLMLoss, losses, 2)
    )
    after = fn(Y, k)
    assert len(forwards) == 2 and len(losses) == 2  # one call per sequence
    torch.testing.assert_close(after, 2 * before)
    (logits, labels), _ = losses[0]
    torch.testing.assert_close(logits[0], torch.log(Y[0]))  # the model's logits are log Ŷ
    assert torch.equal(labels[0], k[0])  # labels = the sequence: the model shifts them


def test_the_gpt2_loss_builtin_on_one_token_is_nan():
    fn = LM["transformers.GPT2LMHeadModel[labels]"].make()
    assert torch.isnan(fn(_probabilities(1, 7), _ids(1, v=7)))


# --- BertForMaskedLM(..., labels=...) -----------------------------------------------------------------------
def test_bert_for_masked_lm_takes_the_mean_over_the_selected_tokens(monkeypatch):
    """On a real BertForMaskedLM: .loss is CrossEntropyLoss() computed inline in its forward (not through
    loss_function / ForMaskedLMLoss), the mean over 𝓜 (the spec's sum / |𝓜|) in the model's dtype, and
    NaN when 𝓜 is empty (the spec gives 0)."""
    model, ce, mapped = _tiny_bert(), [], []
    _spy(monkeypatch, torch.nn.CrossEntropyLoss, "forward", ce)
    monkeypatch.setitem(
        loss_utils.LOSS_MAPPING, "ForMaskedLM", _recording(loss_utils.ForMaskedLMLoss, mapped)
    )
    ids = _ids(1, 6, v=11)
    sel = torch.tensor([[True, False, True, True, False, False]])
    out = model(ids, labels=ids.masked_fill(~sel, -100))
    assert len(ce) == 1 and not mapped and out.loss.dtype == F64
    spec_sum = spec_mlm_loss(torch.softmax(out.logits, dim=-1), ids, sel)
    torch.testing.assert_close(out.loss * 3, spec_sum[0], rtol=1e-12, atol=1e-12)
    assert not math.isclose(out.loss.item(), spec_sum.item(), rel_tol=1e-3)  # a factor |𝓜| = 3
    assert torch.isnan(model(ids, labels=torch.full_like(ids, -100)).loss)


def test_the_bert_loss_builtin_runs_the_models_forward_and_its_loss(monkeypatch):
    fn = LM["transformers.BertForMaskedLM[labels]"].make()
    Y, k = _probabilities(2, 5, 7), _ids(2, 5, v=7)
    sel = torch.tensor([[True, False, True, False, False], [False, True, True, True, True]])
    before = fn(Y, k, sel)
    torch.testing.assert_close(before * sel.sum(-1), spec_mlm_loss(Y, k, sel), rtol=1e-12, atol=1e-12)
    forwards, ce = [], []
    _spy(monkeypatch, transformers.BertForMaskedLM, "forward", forwards)
    _spy(monkeypatch, torch.nn.CrossEntropyLoss, "forward", ce, scale=2)
    after = fn(Y, k, sel)
    assert len(forwards) == 2 and len(ce) == 2
    torch.testing.assert_close(after, 2 * before)
    (_, scores, labels), _ = ce[0]
    torch.testing.assert_close(scores, torch.log(Y[0]))  # prediction_scores = log Ŷ, flattened
    assert labels.tolist() == [k[0, 0].item(), -100, k[0, 2].item(), -100, -100]
    assert torch.isnan(fn(Y, k, torch.zeros_like(sel))).all()


# --- a wrong mapping is caught ------------------------------------------------------------------------------
def _shifted_by_the_caller(k):
    """The classic bug: labels shifted before a model that shifts them again."""
    return torch.nn.functional.pad(k[..., 1:], (0, 1), value=-100)


def _gpt2_mean(Y, k, sel):
    return spec_gpt2_loss(Y, k, mean=True)


def _mlm_mean(Y, k, sel):
    return spec_mlm_loss(Y, k, sel, mean=True)


#: The spec's mean variant (what transformers computes) and the precision it is computed in.
LOSS_CASES = {
    "transformers.GPT2LMHeadModel[labels]": (_gpt2_mean, "float32"),  # ForCausalLMLoss: logits.float()
    "transformers.BertForMaskedLM[labels]": (_mlm_mean, "float64"),
}


@pytest.mark.parametrize(
    ("name", "helper", "wrong"),
    [
        ("transformers.GPT2LMHeadModel[labels]", "_logits", lambda Y: Y),  # probabilities for logits
        ("transformers.GPT2LMHeadModel[labels]", "_causal_labels", _shifted_by_the_caller),
        ("transformers.BertForMaskedLM[labels]", "_logits", lambda Y: Y),
        ("transformers.BertForMaskedLM[labels]", "_mlm_labels", lambda k, sel: k.masked_fill(sel, -100)),
    ],
    ids=["gpt2-probabilities", "gpt2-shifted-twice", "bert-probabilities", "bert-polarity"],
)
def test_a_wrong_loss_mapping_is_caught(name, helper, wrong, monkeypatch):
    """The built-in is the spec's mean variant (impl/'s mean=True); a wrong mapping is not."""
    fn, (mean, dtype) = LM[name].make(), LOSS_CASES[name]
    Y, k = _probabilities(2, 5, 7, seed=3), _ids(2, 5, v=7, seed=4)
    sel = torch.tensor([[True, False, True, True, False], [False, True, False, True, True]])
    args = (Y, k) if "GPT2" in name else (Y, k, sel)
    assert _close(fn(*args), mean(Y, k, sel), dtype)
    monkeypatch.setattr(hf_lm, helper, wrong)
    assert not _close(fn(*args), mean(Y, k, sel), dtype)


# --- the warpers --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("warper", ["TemperatureLogitsWarper", "TopKLogitsWarper"])
def test_the_warper_builtins_call_the_warper(warper, monkeypatch):
    z, calls = torch.randn(2, 3, 7, dtype=F64, generator=torch.Generator().manual_seed(5)), []
    if warper == "TopKLogitsWarper":
        fn, arg = LM["transformers.TopKLogitsWarper"].make(), 3
        torch.testing.assert_close(fn(z, arg), spec_top_k(z, arg), rtol=1e-12, atol=1e-12)
    else:
        fn, arg = LM["transformers.TemperatureLogitsWarper"].make(), 0.7
        torch.testing.assert_close(fn(z, arg), spec_temperature(z, arg), rtol=1e-12, atol=1e-12)
    before = fn(z, arg)
    _spy(monkeypatch, getattr(transformers, warper), "__call__", calls, scale=2)
    after = fn(z, arg)
    assert len(calls) == 1
    (_, ids, scores), _ = calls[0]
    assert ids.shape == (6, 0) and scores.shape == (6, 7)  # the leading axes flattened into one batch
    first = lambda out: out[-1] if isinstance(out, tuple) else out  # noqa: E731 (p_top, p_tau)
    assert not torch.allclose(first(after), first(before))


def test_top_k_keeps_every_logit_tied_with_the_kth():
    """HF's filter is scores < topk(scores, k)[..., -1], with filter_value −∞: ties with the k-th largest
    survive, as in the spec."""
    z = torch.tensor([[3.0, 1.0, 2.0, 2.0, 0.0]], dtype=F64)
    z_top, p_top = LM["transformers.TopKLogitsWarper"].make()(z, 2)
    assert z_top.tolist() == [[3.0, -math.inf, 2.0, 2.0, -math.inf]]
    torch.testing.assert_close(p_top, spec_top_k(z, 2)[1])


# --- GPT2LMHeadModel.generate -------------------------------------------------------------------------------
def _generate_builtin():
    return LM["transformers.GPT2LMHeadModel.generate"].make()


def test_generate_itself_scores_in_float32_without_a_gradient():
    """On a real float64 GPT2LMHeadModel whose weights require gradients: generate's scores are float32
    (_sample's logits[:, −1].to(float32)) and carry no gradient (generate is @torch.no_grad()), even where
    gradients are enabled; the model's own forward gives float64 logits with a gradient."""
    model = _tiny_gpt2()
    ids = _ids(2, 4, v=11, seed=7)
    assert torch.is_grad_enabled() and all(w.requires_grad for w in model.parameters())
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=False,
                         output_scores=True, output_logits=True, return_dict_in_generate=True)  # fmt: skip
    assert out.scores[0].dtype == torch.float32 and out.logits[0].dtype == torch.float32
    assert not out.scores[0].requires_grad and not out.logits[0].requires_grad
    logits = model(ids).logits[:, -1]
    assert logits.dtype == F64 and logits.requires_grad
    torch.testing.assert_close(out.logits[0], logits.detach().float())


def test_given_final_states_generate_as_a_real_gpt2_does():
    """The built-in (a GPT2LMHeadModel whose transformer returns the given H) gives what the real model
    gives from its own final states: the greedy next token and the processed scores' softmax."""
    model = _tiny_gpt2()
    ids, ones = _ids(2, 4, v=11, seed=6), torch.ones(2, 4, dtype=torch.long)
    with torch.no_grad():
        H = model(ids, output_hidden_states=True).hidden_states[-1]  # after ln_f
    E = model.transformer.wte.weight.detach().T  # lm_head is tied to wte
    greedy = model.generate(ids, attention_mask=ones, max_new_tokens=1, do_sample=False)[:, -1]
    sampled = model.generate(ids, attention_mask=ones, max_new_tokens=1, do_sample=True, temperature=0.7,
                             top_k=3, output_scores=True, return_dict_in_generate=True)  # fmt: skip
    k_next, p = _generate_builtin()(H, E, 0.7, 3)
    assert torch.equal(k_next, greedy) and torch.equal(k_next, (H[:, -1] @ E).argmax(-1))
    torch.testing.assert_close(p, torch.softmax(sampled.scores[0], dim=-1), rtol=1e-6, atol=1e-7)


def test_generate_runs_the_generation_loop_and_its_warpers(monkeypatch):
    H, E = torch.randn(2, 3, 5, dtype=F64), torch.randn(5, 7, dtype=F64)
    loops, temperature, top_k = [], [], []
    _spy(monkeypatch, GenerationMixin, "_sample", loops)
    _spy(monkeypatch, transformers.TemperatureLogitsWarper, "__call__", temperature)
    _spy(monkeypatch, transformers.TopKLogitsWarper, "__call__", top_k, scale=2)  # sharpens p
    state = torch.get_rng_state()
    _, p = _generate_builtin()(H, E, 0.5, 2)
    assert len(loops) == 2 and len(temperature) == 1 and len(top_k) == 1  # the greedy and the sampling run
    assert temperature[0][0][0].temperature == 0.5 and top_k[0][0][0].top_k == 2
    assert torch.equal(torch.get_rng_state(), state)  # the draw ran in a forked random stream
    assert not _close(p, spec_next_token(H, E, 0.5, 2)[1], "float32")


def test_generate_gives_float32_probabilities_without_a_gradient():
    """generate takes the last logits .to(float32) and runs under torch.no_grad: p of a float64 model
    agrees with the spec only to float32's precision, and carries no gradient."""
    H = torch.randn(2, 3, 5, dtype=F64, requires_grad=True)
    E = torch.randn(5, 7, dtype=F64, requires_grad=True)
    k_next, p = _generate_builtin()(H, E, 0.9, 4)
    want_k, want_p = spec_next_token(H, E, 0.9, 4)
    assert torch.equal(k_next, want_k)
    assert p.dtype == torch.float32 and not p.requires_grad
    assert _close(p, want_p, "float32") and not _close(p, want_p, "float64")


def test_a_wrong_output_weight_is_caught(monkeypatch):
    H = torch.randn(2, 3, 7, dtype=F64, generator=torch.Generator().manual_seed(8))
    E = torch.randn(7, 7, dtype=F64, generator=torch.Generator().manual_seed(9))  # square: d_e = v
    want = spec_next_token(H, E, 0.8, 3)[1]
    assert _close(_generate_builtin()(H, E, 0.8, 3)[1], want, "float32")
    monkeypatch.setattr(hf_lm, "_lm_head_weight", lambda E: E)  # E for Eᵀ
    assert not _close(_generate_builtin()(H, E, 0.8, 3)[1], want, "float32")


def test_the_given_states_must_match_the_ids():
    model = hf_lm._model("GPT2LMHeadModel", 7, 1, "cpu", F64)
    states = {"transformer.states": torch.zeros(1, 3, 7, dtype=F64)}
    with pytest.raises(ValueError, match=r"given final states have shape \(1, 3, 7\); the model was called "
                                         r"with input_ids of shape \(1, 4\), expected \(1, 3\)"):  # fmt: skip
        torch.func.functional_call(model, states, (), {"input_ids": torch.zeros(1, 4, dtype=torch.long)})
