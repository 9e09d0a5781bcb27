"""Built-in PatchTST targets (verify/audit/adapters/hf_patchtst.py, transformers 5.23): each is registered
with its equation and audited to its verdict; each really runs transformers' PatchTSTModel, PatchTSTPatchify,
PatchTSTEmbedding and PatchTSTPositionalEncoding; a wrong weight layout is caught; and the difference they
document (PatchTSTPatchify drops the start of the series, the spec's variant drop_start, where the equation
pads its end and its variant no_padding drops the end) is asserted on transformers itself."""

import math

import pytest
import torch

from lmspec import spec
from lmspec.impl.timeseries import input_, patching
from lmspec.verify.audit import audit, builtins
from lmspec.verify.audit.adapters import hf_patchtst

PATCHING = "transformers.PatchTSTModel"
INPUT = "transformers.PatchTSTModel[patch_length=1]"
BUILTINS = {name: b for name, b in builtins().items() if b.make.__module__.endswith(".hf_patchtst")}
#: The right layout, kept before a test swaps it for a wrong one.
RIGHT_WEIGHTS = hf_patchtst.patchtst_weights


def _tensors(L_in=8, d_x=3, d_e=5, P=3, S=2, batch=(2,), seed=0):
    """A series ``(*batch, L_in, d_x)`` and PatchTST weights in the spec's layout, N = ⌊(L_in − P)/S⌋ + 1."""
    g = torch.Generator().manual_seed(seed)
    N = (L_in - P) // S + 1
    X = torch.randn(*batch, L_in, d_x, generator=g, dtype=torch.float64)
    W_p = torch.randn(d_e, P, generator=g, dtype=torch.float64)
    b_p = torch.randn(d_e, generator=g, dtype=torch.float64)
    W_pos = torch.randn(d_e, N, generator=g, dtype=torch.float64)
    return X, W_p, b_p, W_pos


def _patchtst(**config):
    """A PatchTSTModel as the built-ins build it (hf_patchtst.PATCHTST_BASE), float64, random weights."""
    import transformers

    return transformers.PatchTSTModel(transformers.PatchTSTConfig(**{**hf_patchtst.PATCHTST_BASE, **config}))


# --- registration ---------------------------------------------------------------------------------------
def test_each_patchtst_target_is_registered_with_its_equation_mapping_and_ties():
    assert {name: b.equation for name, b in BUILTINS.items()} == {
        PATCHING: "timeseries.patching[drop_start]",
        INPUT: "timeseries.input",
    }
    for name, b in BUILTINS.items():
        eq = spec.get(b.equation)
        assert b.group == "hf", name
        assert {s.split(",")[0] for s, _ in b.mapping} >= {"X", "W_p", "b_p"}, name
        assert set(b.derive) | set(b.sizes) <= set(eq.free_axes), name
        assert "scaling=None" in b.description, name
    assert BUILTINS[INPUT].sizes == {"d_x": 1} and BUILTINS[INPUT].derive == {"n": "n_max"}
    assert "Held to the variant drop_start" in BUILTINS[PATCHING].description
    assert "no_padding drops the LAST" in BUILTINS[PATCHING].description
    assert hf_patchtst.PATCHTST_BASE["scaling"] is None
    assert hf_patchtst.PATCHTST_BASE["positional_encoding_type"] == "random"


# --- the audit --------------------------------------------------------------------------------------------
def test_patchtst_model_audits_to_pass_as_drop_start():
    """Held to timeseries.patching[drop_start] (the first (L_in − P) mod S values left out), every check
    passes: the patches, the weights' layout, the bias, the positions and channel independence are the
    spec's."""
    report = audit(PATCHING, profile="quick", diagnose=False)
    status = {c.name: c.status for c in report.checks}
    assert report.equation == "timeseries.patching[drop_start]"
    assert status == {
        "shape": "pass",
        "value=oracle": "pass",
        "value=generated": "pass",
        "property:channel_independence": "pass",
        "gradient": "pass",
    }, {c.name: c.message for c in report.checks}
    assert report.verdict == "pass"


def test_patchtst_model_held_to_no_padding_fails_on_the_values():
    """The same model held to no_padding (transformers' N, the LAST values left out): shapes and channel
    independence agree, the values do not (the description's claim, through the auditor)."""
    report = audit(PATCHING, "timeseries.patching[no_padding]", profile="quick", diagnose=False)
    status = {c.name: c.status for c in report.checks}
    assert report.equation == "timeseries.patching[no_padding]"
    assert status["shape"] == "pass" and status["property:channel_independence"] == "pass"
    assert status["value=oracle"] == "fail" and status["value=generated"] == "fail"
    oracle = next(c for c in report.checks if c.name == "value=oracle")
    assert "oracle gives" in oracle.message  # the values differ: the target runs, it is no error
    assert report.verdict == "fail"


def test_patchtst_with_patch_length_1_is_the_tst_input():
    report = audit(INPUT, profile="quick", diagnose=False)
    status = {c.name: c.status for c in report.checks}
    assert report.equation == "timeseries.input"
    assert set(status.values()) == {"pass"}, {c.name: c.message for c in report.checks}
    assert {"shape", "value=oracle", "value=generated", "property:token_locality", "gradient"} <= set(status)
    assert report.verdict == "pass"


def _positions_reshaped(W_p, b_p, W_pos):
    """The classic bug: position_enc as W_pos reshaped to N × d_e instead of transposed."""
    right = RIGHT_WEIGHTS(W_p, b_p, W_pos)
    right["encoder.positional_encoder.position_enc"] = W_pos.reshape(W_pos.shape[1], W_pos.shape[0])
    return right


def test_a_wrong_position_layout_fails_the_audit(monkeypatch):
    monkeypatch.setattr(hf_patchtst, "patchtst_weights", _positions_reshaped)
    report = audit(INPUT, profile="quick", diagnose=False)
    status = {c.name: c.status for c in report.checks}
    messages = {c.name: c.message for c in report.checks}
    assert status["value=oracle"] == "fail" and status["value=generated"] == "fail"
    assert "oracle gives" in messages["value=oracle"]  # a value mismatch, not an error in the target
    assert report.verdict == "fail"


def test_a_wrong_projection_layout_is_caught(monkeypatch):
    X, W_p, b_p, W_pos = _tensors(L_in=8, P=3, S=2)  # r = 1: the first value is left out
    fn = BUILTINS[PATCHING].make()
    right = fn(X, W_p, b_p, W_pos, 2)
    spec_form = patching(X, W_p, W_pos, 2, b_p, padding=False, drop_start=True)
    torch.testing.assert_close(right, spec_form, rtol=1e-12, atol=1e-12)

    def projection_reshaped(W_p, b_p, W_pos):  # W_p read as in × out, reshaped back to out × in
        return {**RIGHT_WEIGHTS(W_p, b_p, W_pos), "encoder.embedder.input_embedding.weight": (
            W_p.T.reshape(W_p.shape)
        )}  # fmt: skip

    monkeypatch.setattr(hf_patchtst, "patchtst_weights", projection_reshaped)
    assert not torch.allclose(fn(X, W_p, b_p, W_pos, 2), right, atol=1e-6)


# --- each goes through transformers -----------------------------------------------------------------------
MODULES = ("PatchTSTPatchify", "PatchTSTEmbedding", "PatchTSTPositionalEncoding", "PatchTSTNOPScaler")


@pytest.mark.parametrize("cls_name", [*MODULES, "PatchTSTModel"])
def test_the_result_comes_from_the_transformers_modules(cls_name, monkeypatch):
    """Doubling the output of each transformers class's forward changes the built-ins' results (the NOP
    scaler's data output is doubled): each is computed by those classes, as PatchTSTModel calls them."""
    from transformers.models.patchtst import modeling_patchtst

    cls = getattr(modeling_patchtst, cls_name)
    X, W_p, b_p, W_pos = _tensors(L_in=7, P=3, S=2)
    fn, fn_input = BUILTINS[PATCHING].make(), BUILTINS[INPUT].make()
    x1, w1, b1, pos1 = X[..., :1], torch.randn(5, 1, dtype=torch.float64), b_p, torch.randn(5, 7).double()
    before, before_input = fn(X, W_p, b_p, W_pos, 2), fn_input(x1, w1, b1, pos1)
    original, calls = cls.forward, []

    def spy(self, *args, **kwargs):
        calls.append(type(self).__name__)
        out = original(self, *args, **kwargs)
        if cls_name == "PatchTSTModel":
            return type(out)(last_hidden_state=2 * out.last_hidden_state)
        return (2 * out[0], *out[1:]) if isinstance(out, tuple) else 2 * out

    monkeypatch.setattr(cls, "forward", spy)
    assert not torch.allclose(fn(X, W_p, b_p, W_pos, 2), before)
    assert not torch.allclose(fn_input(x1, w1, b1, pos1), before_input)
    assert calls.count(cls_name) == 2


def test_the_encoder_input_is_hidden_states_0_of_a_deeper_model():
    """num_hidden_layers=0 is no shortcut: a PatchTSTModel with layers gives the same tensor as its
    hidden_states[0] (the input of its first encoder layer)."""
    X, W_p, b_p, W_pos = _tensors(L_in=8, P=3, S=2, d_e=4)
    sizes = dict(num_input_channels=3, context_length=8, patch_length=3, patch_stride=2, d_model=4)
    model = _patchtst(**sizes, num_hidden_layers=1, num_attention_heads=2, ffn_dim=6).double().eval()
    weights = hf_patchtst.patchtst_weights(W_p, b_p, W_pos)
    out = torch.func.functional_call(model, weights, (), {"past_values": X, "output_hidden_states": True})
    got = BUILTINS[PATCHING].make()(X, W_p, b_p, W_pos, 2)
    torch.testing.assert_close(got, out.hidden_states[0], rtol=0, atol=0)
    assert not torch.allclose(out.last_hidden_state, got)  # the layer does change it


def test_bad_sizes_are_refused_in_the_spec_names():
    X, W_p, b_p, W_pos = _tensors(L_in=3, P=3, S=2)
    fn = BUILTINS[PATCHING].make()
    with pytest.raises(ValueError, match=r"PatchTSTModel needs a stride S ≥ 1 and L_in > P .* L_in=3, P=3"):
        fn(X, W_p, b_p, W_pos, 2)
    X, W_p, b_p, W_pos = _tensors(L_in=8, P=3, S=2)
    with pytest.raises(ValueError, match=r"⌊\(L_in − P\)/S⌋ \+ 1 = 3 patches .* but W_pos has N=4 positions"):
        fn(X, W_p, b_p, torch.cat([W_pos, W_pos[:, :1]], dim=1), 2)
    with pytest.raises(ValueError, match=r"needs one variable \(d_x = 1.* found d_x=3, n=8, n_max=8"):
        BUILTINS[INPUT].make()(X, torch.randn(5, 3).double(), b_p, torch.randn(5, 8).double())


# --- the differences they document ------------------------------------------------------------------------
def test_patchify_drops_the_first_values_where_the_spec_pads_the_end():
    """L_in = 8, P = 3, S = 2: transformers cuts ⌊5/2⌋ + 1 = 3 patches from x_2 on (sequence_start = 8 − 7
    = 1), ending at the last value, as the spec's drop_start does; the equation pads the end (4 patches), its
    no_padding keeps x_1 and drops x_8. Hand-derived on the series 0, 1, …, 7."""
    from transformers.models.patchtst.modeling_patchtst import PatchTSTPatchify

    config = _patchtst(num_input_channels=1, context_length=8, patch_length=3, patch_stride=2).config
    patchify = PatchTSTPatchify(config)
    assert (patchify.num_patches, patchify.sequence_start) == (3, 1)
    x = torch.arange(8.0).reshape(1, 8, 1)
    assert patchify(x)[0, 0].tolist() == [[1, 2, 3], [3, 4, 5], [5, 6, 7]]
    # the spec's forms, through impl/ (held to the spec by its own tests), with W_p = I, b_p = 0, W_pos = 0
    eye, zero3, zero4 = torch.eye(3), torch.zeros(3, 3), torch.zeros(3, 4)
    drop_start = patching(x, eye, zero3, 2, padding=False, drop_start=True)
    assert drop_start[0, 0].tolist() == [[1, 2, 3], [3, 4, 5], [5, 6, 7]]
    assert patching(x, eye, zero3, 2, padding=False)[0, 0].tolist() == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    assert patching(x, eye, zero4, 2)[0, 0].tolist() == [[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 7, 7]]


@pytest.mark.parametrize(("L_in", "P", "S"), [(8, 3, 2), (11, 2, 4), (9, 4, 3), (7, 3, 2)])
def test_patchtst_is_drop_start_and_not_no_padding_unless_s_divides(L_in, P, S):
    """PatchTSTModel is the spec's drop_start, which is no_padding on X without its first r = (L_in − P) mod S
    time steps; it differs from no_padding on X itself whenever r > 0, and is no_padding when r = 0."""
    X, W_p, b_p, W_pos = _tensors(L_in=L_in, P=P, S=S, batch=(2, 1))
    got = BUILTINS[PATCHING].make()(X, W_p, b_p, W_pos, S)
    r = (L_in - P) % S
    torch.testing.assert_close(got, patching(X, W_p, W_pos, S, b_p, padding=False, drop_start=True))
    torch.testing.assert_close(got, patching(X[..., r:, :], W_p, W_pos, S, b_p, padding=False))
    no_padding = patching(X, W_p, W_pos, S, b_p, padding=False)
    assert torch.allclose(got, no_padding) == (r == 0)


def test_patchtst_defaults_are_what_the_builtins_turn_off():
    """PatchTSTConfig's defaults standardise each series (scaling='std') and use a fixed sincos table (the
    sinusoid centred and divided by 10 × its std, frozen); a class token adds a position; share_embedding=
    False gives each variable its own Linear. None of these is in the tutorial's equations."""
    import transformers
    from transformers.models.patchtst.modeling_patchtst import PatchTSTPositionalEncoding

    default = transformers.PatchTSTConfig()
    assert (default.scaling, default.positional_encoding_type) == ("std", "sincos")
    assert default.use_cls_token is False
    assert (default.patch_length, default.patch_stride, default.share_embedding) == (1, 1, True)
    config = transformers.PatchTSTConfig(d_model=4, positional_encoding_type="sincos")
    table = PatchTSTPositionalEncoding._init_pe(config, 3)
    assert not table.requires_grad
    pos, i = torch.arange(3.0).unsqueeze(1), torch.arange(0, 4, 2)
    angle = pos * torch.exp(-i * math.log(10000.0) / 4)
    raw = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).reshape(3, 4)
    torch.testing.assert_close(table.data, (raw - raw.mean()) / (10 * (raw - raw.mean()).std()))
    # the standardising scaler changes the encoder's input; the built-ins' NOP scaler leaves the series as is
    X, W_p, b_p, W_pos = _tensors(L_in=7, P=3, S=2, d_x=2)
    weights = hf_patchtst.patchtst_weights(W_p, b_p, W_pos)
    sizes = dict(num_input_channels=2, context_length=7, patch_length=3, patch_stride=2, d_model=5)
    std = torch.func.functional_call(_patchtst(**sizes, scaling="std").double().eval(), weights, (X,))
    assert not torch.allclose(std.last_hidden_state, BUILTINS[PATCHING].make()(X, W_p, b_p, W_pos, 2))
    cls = _patchtst(**sizes, use_cls_token=True)
    assert cls.encoder.positional_encoder.position_enc.shape == (4, 5)  # N + 1 positions
    separate = _patchtst(**sizes, share_embedding=False).encoder.embedder.input_embedding
    assert len(separate) == 2 and separate[0].weight is not separate[1].weight


def test_patch_length_1_is_tst_input_on_one_variable():
    """P = S = 1 on one variable: u_t = W_p x_t + b_p + λ_t, the TST input (impl.timeseries.input)."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(2, 6, 1, generator=g, dtype=torch.float64)
    W_p, b_p, Lambda = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((4, 1), (4,), (4, 6)))
    got = BUILTINS[INPUT].make()(X, W_p, b_p, Lambda)
    torch.testing.assert_close(got, input_(X, W_p, b_p, Lambda), rtol=1e-12, atol=1e-12)
