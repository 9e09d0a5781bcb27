"""Inference of a function's binding (verify/audit/infer/): names and shapes decide, values never do.

The zoo (test_zoo.py) audits every plain function it holds with no layout and checks each verdict; these tests
pin the rules themselves.
"""

import inspect
import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from jaxtyping import Float

from lmspec import spec
from lmspec.verify._errors import AuditError
from lmspec.verify.audit import audit
from lmspec.verify.audit.auditor import explain
from lmspec.verify.audit.infer import InferenceError, infer_function
from lmspec.verify.audit.report import to_json
from lmspec.verify.cli import main

SDPA = spec.get("attention.scaled_dot_product")


def keep(q, k, v, mask):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return s.masked_fill(~mask, float("-inf")).softmax(-1).nan_to_num(0.0) @ v


def ignore(q, k, v, mask):  # the same code with the other polarity: True = masked
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return s.masked_fill(mask, float("-inf")).softmax(-1).nan_to_num(0.0) @ v


def padding(query, key, value, key_padding_mask):
    s = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    s = s.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    return s.softmax(-1).nan_to_num(0.0) @ value


def hf(query, key, value, attention_mask):
    s = query @ key.transpose(-1, -2) / math.sqrt(query.size(-1))
    s = s.masked_fill(attention_mask[:, None, None, :] == 0, float("-inf"))
    return s.softmax(-1).nan_to_num(0.0) @ value


def flagged(q, k, v, is_causal=False):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def seq_first(x, weight, bias):  # (d_e,) parameters: layer norm over the last axis
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False)) * weight + bias


def keys_transposed(q, k, v):  # takes K already transposed: an input convention, not a bug
    return (q @ k / math.sqrt(q.size(-1))).softmax(-1) @ v


def test_names_and_shapes_give_the_readmes_layout():
    inferred = infer_function(keep, SDPA)
    assert inferred.options() == [
        "--layout", "q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v", "--mask", "bool_keep"
    ]  # fmt: skip


def test_values_never_choose_a_mask_polarity():
    """The two polarities fit the same shapes; the binding is the same for both (the name says nothing), so
    the one whose polarity differs is named as such instead of passing under a binding chosen for it."""
    assert infer_function(keep, SDPA).options() == infer_function(ignore, SDPA).options()
    right = audit(keep, "attention.scaled_dot_product", profile="quick")
    other = audit(ignore, "attention.scaled_dot_product", profile="quick")
    assert right.verdict == "pass" and right.inferred is not None
    assert other.verdict == "variant" and other.matched == ["mask polarity inverted"]


@pytest.mark.parametrize(
    ("fn", "layout", "mask"),
    [
        (padding, "query:Q=b h n d_k, key:K=b h n d_k, value:V=b h n d_v, key_padding_mask=b n -> b h n d_v",
         "key_padding"),
        (hf, "query:Q=b h n d_k, key:K=b h n d_k, value:V=b h n d_v, attention_mask=b n -> b h n d_v",
         "key_keep_int"),
        (flagged, "q=b h n d_k, k=b h n d_k, v=b h n d_v, is_causal:True -> b h n d_v", "causal"),
    ],
)  # fmt: skip
def test_a_masks_name_says_its_convention(fn, layout, mask):
    inferred = infer_function(fn, SDPA)
    assert (inferred.layout, inferred.mask) == (layout, mask)


def test_shapes_decide_the_axis_order():
    ln = infer_function(seq_first, spec.get("norm.layer_norm"))
    assert ln.layout == "x:H=b n d_e, weight:alpha=d_e, bias:beta=d_e -> b n d_e"
    transposed = infer_function(keys_transposed, SDPA)
    assert "k=b h d_k n" in transposed.layout and transposed.mask == "none"


def test_a_function_nothing_explains_is_an_error_that_says_what_to_write():
    def opaque(a, b):
        return a

    with pytest.raises(InferenceError, match=r"the arguments 'a', 'b' take: write the binding with --layout"):
        infer_function(opaque, SDPA)

    def wrong_output(q, k, v, mask):
        return q.sum()

    fits_none = r"no layout fits attention.scaled_dot_product: \d+ candidate"
    with pytest.raises(InferenceError, match=fits_none) as e:
        infer_function(wrong_output, SDPA)
    # the nearest binding is named: its arguments' shapes bound, its output not
    assert "(the nearest ran on q (" in str(e.value) and "and returned (), not P (" in str(e.value)


def test_the_report_and_its_json_carry_the_inferred_binding():
    report = audit(keep, "attention.scaled_dot_product", profile="quick")
    assert report.notes[0].startswith("binding inferred (docs/audit.md, Inference): --layout 'q=b h n d_k")
    (entry,) = json.loads(to_json([report]))["reports"]
    assert entry["inferred"]["mask"] == "bool_keep" and entry["inferred"]["options"][0] == "--layout"
    given = audit(
        keep, "attention.scaled_dot_product", profile="quick", **_options(report.inferred["options"])
    )
    assert given.inferred is None and given.verdict == report.verdict  # the printed options pin the binding


def _options(options: list[str]) -> dict:
    return {flag.removeprefix("--"): value for flag, value in zip(options[::2], options[1::2], strict=True)}


def test_explain_prints_the_command_and_audits_nothing(tmp_path, capsys):
    path = tmp_path / "attn.py"
    path.write_text(
        "import math\n\ndef attention(query, key, value, key_padding_mask):\n"
        "    s = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))\n"
        "    return s.masked_fill(key_padding_mask[:, None, None, :], float('-inf')).softmax(-1) @ value\n"
    )
    assert main(["audit", f"{path}:attention", "--as", "attention.scaled_dot_product", "--explain"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == (
        f"lmspec audit {path}:attention --as attention.scaled_dot_product --layout 'query:Q=b h n d_k, "
        "key:K=b h n d_k, value:V=b h n d_v, key_padding_mask=b n -> b h n d_v' --mask key_padding"
    )
    assert "torch's key_padding_mask: True = padding" in err


def test_explain_refuses_what_it_cannot_infer(capsys):
    assert main(["audit", "torch.nn.LayerNorm", "--as", "norm.layer_norm[eps]", "--explain"]) == 2
    assert "nothing to infer" in capsys.readouterr().err
    with pytest.raises(Exception, match="nothing to infer"):
        explain(torch.nn.LayerNorm(4), "norm.layer_norm")


def test_the_docs_explain_example_prints_what_lmspec_prints(tmp_path, capsys, monkeypatch):
    """docs/audit.md's --explain example, on the README's my_attention.py, verbatim."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readme, docs = (root / "README.md").read_text(), (root / "docs" / "audit.md").read_text()
    source = re.search(r"```python\n# my_attention\.py\n(.*?)```", readme, re.S).group(1)
    pattern = r"^(lmspec audit my_attention\.py:attention .*--explain)\n# (lmspec audit .*)$"
    example = re.search(pattern, docs, re.M)
    (tmp_path / "my_attention.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    assert main(example.group(1).split()[1:]) == 0
    assert capsys.readouterr().out.strip() == example.group(2)


# --- modules ------------------------------------------------------------------------------------------------
def test_a_gpt_stack_binds_from_its_names_as_the_hand_written_mapping_does(tmp_path, monkeypatch):
    """docs/audit.md's GPT-2-style stack: its 25 written options are inferred (only --mask causal is said:
    SDPA's is_causal inside a class named GPT is in no name), and the inferred maps are the written ones."""
    from lmspec.verify.bench._audit import STACK_ARGS, STACK_SOURCE

    (tmp_path / "gpt_stack.py").write_text(STACK_SOURCE)
    monkeypatch.chdir(tmp_path)
    inferred = explain("gpt_stack.py:GPT", "transformer.stack[eps]", mask="causal")
    pairs = itertools.pairwise(STACK_ARGS)
    written = dict(arg.split("=", 1) for flag, arg in pairs if flag == "--param")
    assert inferred.params == written
    assert inferred.init == {"n_layer": "L", "n_embd": "d_e", "n_head": "M"}
    assert inferred.constants == {"eps": 1e-5}
    assert inferred.derive == {"d_e": "M*d_k", "d_v": "d_k", "d_f": "4*d_e"}
    report = audit("gpt_stack.py:GPT", "transformer.stack[eps]", mask="causal", profile="quick")
    assert report.verdict == "pass" and "--param" in report.inferred["options"]


class _BiasFree(torch.nn.Module):
    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.h = num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (
            torch.nn.Linear(embed_dim, embed_dim, bias=False) for _ in range(4)
        )

    def forward(self, x):
        b, n, d = x.shape
        projections = (self.q_proj, self.k_proj, self.v_proj)
        q, k, v = (p(x).view(b, n, self.h, -1).transpose(1, 2) for p in projections)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.out_proj(y.transpose(1, 2).reshape(b, n, d))


def test_a_bias_the_module_lacks_is_never_stated_absent_by_inference():
    """Stating b_Q … b_O absent would make a bias-free module pass as the equation with biases; inference
    leaves them unmapped, and the audit names the variant it computes, as with a written binding."""
    inferred = explain(_BiasFree, "attention.multi_head")
    assert inferred.absent == [] and not any("bias" in key for key in inferred.params)
    report = audit(_BiasFree, "attention.multi_head", profile="quick")
    assert report.verdict == "variant" and report.matched == ["no_bias"]


def test_a_constructor_argument_nothing_explains_is_an_error():
    class Odd(torch.nn.Module):
        def __init__(self, width, flavour):
            super().__init__()

    with pytest.raises(Exception, match=r"the constructor arguments 'width', 'flavour' take"):
        explain(Odd, "attention.multi_head")


@pytest.mark.parametrize(
    ("cls", "as_", "verdict", "matched", "layout"),
    [
        (torch.nn.LayerNorm, "norm.layernorm", "pass", [], "input:H=b n d_e -> b n d_e"),
        (torch.nn.MultiheadAttention, "attention.multi_head", "variant", ["fully_masked_nan"],
         "query:H=n b d_e, key:H=n b d_e, value:H=n b d_e, key_padding_mask=b n -> n b d_e, _"),
        (torch.nn.TransformerEncoderLayer, "transformer.encoder_layer", "pass", [],
         "src:H=n b d_e, src_mask=n n -> n b d_e"),
    ],
)  # fmt: skip
def test_torch_layers_infer_to_the_verdicts_of_their_built_ins(cls, as_, verdict, matched, layout):
    """torch.nn's layer classes, bound by inference alone, reach the verdict their hand-written built-ins
    (lmspec audit torch.nn.…) reach: NaN on a fully padded sequence for MultiheadAttention (need_weights=True,
    sequence-first by default), the post-LN ReLU block with ε for TransformerEncoderLayer."""
    inferred = explain(cls, as_)
    assert inferred.forward.layout == layout
    report = audit(cls, as_, profile="quick")
    assert (report.verdict, report.matched) == (verdict, matched)


#: minGPT's attention (its style: a config object, key/query/value/proj, a registered tril buffer named mask)
MINGPT = """import math
import torch
import torch.nn as nn
from torch.nn import functional as F


class Config:
    def __init__(self, n_embd=64, n_head=4, block_size=32, attn_pdrop=0.0, resid_pdrop=0.0):
        self.n_embd, self.n_head, self.block_size = n_embd, n_head, block_size
        self.attn_pdrop, self.resid_pdrop = attn_pdrop, resid_pdrop


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.key = nn.Linear(config.n_embd, config.n_embd)
        self.query = nn.Linear(config.n_embd, config.n_embd)
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.attn_drop = nn.Dropout(config.attn_pdrop)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.register_buffer("mask", torch.tril(torch.ones(config.block_size, config.block_size))
                                     .view(1, 1, config.block_size, config.block_size))
        self.n_head = config.n_head

    def forward(self, x):
        B, T, C = x.size()
        k = self.key(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = self.query(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = self.value(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float('-inf'))
        att = self.attn_drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))
"""


def test_a_module_built_from_a_config_object_gets_the_rest_inferred(tmp_path, monkeypatch):
    """--init says how to build it (a config object); the parameter maps, ties and forward layout are
    still inferred, and the class's name (CausalSelfAttention) says its mask."""
    (tmp_path / "mingpt.py").write_text(MINGPT)
    monkeypatch.chdir(tmp_path)
    report = audit(
        "mingpt.py:CausalSelfAttention", "attention.mha", init={"config": "Config(n_embd=d_e, n_head=M)"},
        profile="quick",
    )  # fmt: skip
    assert report.verdict == "pass", report.summary
    options = report.inferred["options"]
    assert "key.weight=W_K -> (M d_k) d_e" in options and "proj.weight=W_O -> d_e M*d_v" in options
    assert options[-2:] == ["--mask", "causal"] and "d_e=M*d_k" in options


# --- transformers' modules, with nothing written: the built-ins' hand-written mappings, inferred ------------
#: transformers' modules as `lmspec audit transformers.models.…:Class --as ID` finds them, and parameter maps
#: the built-ins write by hand (verify/audit/adapters/hf_*.py) that inference must find on its own.
HF_CLASSES = {
    "gpt2.modeling_gpt2:GPT2MLP": ("transformer.ffn", "GPT2Config(", {"c_fc.weight": "W_1 -> d_e d_f"}),
    "gpt2.modeling_gpt2:GPT2Attention": (
        "attention.multi_head",
        "GPT2Config(",
        {"c_attn.weight": "W_Q, W_K, W_V -> d_e (3 M d_k)"},
    ),
    "gpt2.modeling_gpt2:GPT2Block": ("gpt2.block", "GPT2Config(", {"ln_2.weight": "alpha_2"}),
    "bert.modeling_bert:BertLayer": (
        "bert.layer",
        "BertConfig(",
        {
            "attention.self.query.weight": "W_Q -> (M d_k) d_e",
            "attention.output.dense.weight": "W_O -> d_e M*d_v",
            "attention.output.LayerNorm.weight": "alpha_1",
            "intermediate.dense.weight": "W_1",
            "output.dense.weight": "W_2",
            "output.LayerNorm.bias": "beta_2",
        },
    ),
    "bert.modeling_bert:BertPooler": (
        "bert.pooler",
        "BertConfig(",
        {"dense.weight": "W_p", "dense.bias": "b_p"},
    ),
    "bert.modeling_bert:BertOnlyNSPHead": (
        "bert.nsp_head",
        "BertConfig(",
        {"seq_relationship.weight": "W_nsp", "seq_relationship.bias": "b_nsp"},
    ),
    "vit.modeling_vit:ViTLayer": (
        "transformer.block_pre_ln",
        "ViTConfig(",
        {"layernorm_before.weight": "alpha_1", "mlp.fc2.weight": "W_2"},
    ),
}


@pytest.mark.parametrize("where", sorted(HF_CLASSES))
def test_a_transformers_module_is_bound_with_nothing_written(where):
    """The configuration object is built from the equation's sizes (transformers' SDPA attention, which runs
    in float64), the parameters are mapped by their names, and a 4-D attention_mask is the additive mask a
    model hands its layers."""
    as_, config, maps = HF_CLASSES[where]
    inferred = explain(f"transformers.models.{where}", as_)
    assert (
        inferred.init["config"].startswith(config) and 'attn_implementation="sdpa"' in inferred.init["config"]
    )
    assert {k: inferred.params[k] for k in maps} == maps
    if "attention_mask" in inferred.forward.layout:
        assert "attention_mask=b 1 n n" in inferred.forward.layout and inferred.forward.mask == "additive"


@pytest.mark.parametrize(
    ("where", "as_", "verdict", "matched"),
    [
        ("bert.modeling_bert:BertLayer", "bert.layer", "pass", []),  # the built-in's BertLayer, mask aside
        ("vit.modeling_vit:ViTLayer", "transformer.block_pre_ln", "variant", ["gelu", "gelu_eps"]),
        # the head returns the two logits; the built-in takes their softmax, as the equation's output is
        ("bert.modeling_bert:BertOnlyNSPHead", "bert.nsp_head", "variant", ["returns logits"]),
        ("bert.modeling_bert:BertOnlyMLMHead", "bert.mlm_head[eps]", "variant", ["returns logits"]),
        # logits where the equation's output is the last hidden state: read from hidden_states[-1]
        ("gpt2.modeling_gpt2:GPT2LMHeadModel", "gpt2.forward", "variant", ["eps"]),
        # no output projection (BertSelfOutput's dense is W_O): the variant without W_O, b_O, never a pass
        ("bert.modeling_bert:BertSelfAttention", "attention.multi_head", "variant", ["no_output_projection"]),
        # the built-in's known difference: nn.Embedding's padding_idx = 0 gives E's [PAD] column no gradient
        ("bert.modeling_bert:BertEmbeddings", "bert.input[eps]", "fail", []),
    ],
)
def test_a_transformers_module_audited_with_nothing_written(where, as_, verdict, matched):
    """The verdicts of the built-ins (transformers.BertLayer, transformers.ViTLayer = block_pre_ln[gelu_eps],
    the MLM head, which returns logits, BertEmbeddings, whose [PAD] column gets no gradient,
    BertSelfAttention, which leaves W_O to BertSelfOutput), reached with no binding written."""
    report = audit(f"transformers.models.{where}", as_, profile="quick")
    assert (report.verdict, report.matched[:2]) == (verdict, matched), report.summary
    assert report.inferred is not None
    if verdict == "fail":
        assert {c.name for c in report.failures} == {"gradient"}, report.summary


def test_a_model_with_a_head_is_read_at_its_last_hidden_state_as_the_command_line_says():
    """GPT2LMHeadModel returns (logits, past_key_values): neither is gpt2.forward's H_out. Its hidden_states
    (output_hidden_states=True, through its **kwargs) end with the state after ln_f: the printed layout
    asks for them and reads the last, whatever the number of layers."""
    inferred = explain("transformers.models.gpt2.modeling_gpt2:GPT2LMHeadModel", "gpt2.forward")
    layout = "input_ids:k=b n, output_hidden_states:True -> _, _, (..., H_out=b n d_e)"
    assert inferred.forward.layout == layout
    assert inferred.params["transformer.ln_f.weight"] == "alpha_e"
    assert any(note.startswith("its results hold no output") for note in inferred.forward.notes)


def test_the_special_token_warning_of_a_small_vocabulary_is_dropped_while_a_module_is_built():
    """GPT2Config's bos/eos ids (50256) lie outside the audit's small vocabularies: transformers warns about
    the sizes lmspec chose, not the code. Only that warning, and only while lmspec builds."""
    import logging

    from lmspec.verify.audit.targets import quiet_special_token_ids

    log, seen = logging.getLogger("transformers.configuration_utils"), []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.WARNING)  # whatever verbosity an earlier test left to transformers' logger
    try:
        token = "Model config: bos_token_id must be `None` or an integer within the vocabulary (0 to 8)"
        with quiet_special_token_ids():
            log.warning(token)
            log.warning("another warning")
        log.warning(token)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert seen == ["another warning", token]


def test_bert_heads_and_embeddings_are_mapped_by_shape_where_names_say_nothing():
    """What names leave open, shapes at the probe's distinct sizes settle when one spec parameter is left for
    each: the MLM head's decoder (v, d_e) is Eᵀ and its bias b_out, the transform's LayerNorm α_m/β_m; the
    head's own ``bias`` that forward never reads is kept as it is. BertEmbeddings' token_type table (2, d_e)
    is Gᵀ and token_type_ids are the segments s, passed as integer ids."""
    head = explain("transformers.models.bert.modeling_bert:BertOnlyMLMHead", "bert.mlm_head[eps]")
    assert head.params == {
        "predictions.bias": "keep", "predictions.transform.dense.weight": "W_m",
        "predictions.transform.dense.bias": "b_m", "predictions.transform.LayerNorm.weight": "alpha_m",
        "predictions.transform.LayerNorm.bias": "beta_m", "predictions.decoder.weight": "E -> v d_e",
        "predictions.decoder.bias": "b_out",
    }  # fmt: skip
    embeddings = explain("transformers.models.bert.modeling_bert:BertEmbeddings", "bert.input[eps]")
    assert embeddings.params["token_type_embeddings.weight"] == "G -> 2 d_e"
    assert embeddings.params["LayerNorm.weight"] == "alpha_e"
    assert embeddings.forward.layout == "input_ids:k=b n, token_type_ids:s=b n -> b n d_e"


def test_a_model_style_attention_mask_stays_the_models_input_outside_transformers():
    """Outside transformers a 4-D attention_mask is still read as Hugging Face's 1/0 input expanded (the zoo's
    sdpa_mask_fill_1e4 does `(1 - attention_mask) * -1e4`): only a transformers layer takes it additive."""

    def attention(q, k, v, attention_mask=None):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        scores = scores + (1.0 - attention_mask) * -1e9
        return torch.softmax(scores, dim=-1) @ v

    inferred = explain(attention, "attention.scaled_dot_product")
    assert inferred.mask == "key_keep_int"


# --- LSTM cells that stack their gates --------------------------------------------------------------------
LSTM_CELLS = '''import torch
from torch import nn


class KerasOrderCell(nn.Module):
    """Gates stacked (i, f, c, o) as Keras does, unpacked by name."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.W = nn.Linear(input_size, 4 * hidden_size)
        self.U = nn.Linear(hidden_size, 4 * hidden_size, bias=False)

    def forward(self, x, h, c):
        f_t, i_t, o_t, c_hat = torch.split(self.W(x) + self.U(h), c.shape[-1], dim=-1)
        c_next = torch.sigmoid(f_t) * c + torch.sigmoid(i_t) * torch.tanh(c_hat)
        h_next = torch.sigmoid(o_t) * torch.tanh(c_next)
        return h_next, c_next


class SwappedGatesCell(KerasOrderCell):
    """Bug: the forget gate scales the candidate and the input gate the old state."""

    def forward(self, x, h, c):
        f_t, i_t, o_t, c_hat = torch.split(self.W(x) + self.U(h), c.shape[-1], dim=-1)
        c_next = torch.sigmoid(i_t) * c + torch.sigmoid(f_t) * torch.tanh(c_hat)
        h_next = torch.sigmoid(o_t) * torch.tanh(c_next)
        return h_next, c_next


class UnnamedGatesCell(KerasOrderCell):
    """The gates indexed, never named: their order is nowhere in the code."""

    def forward(self, x, h, c):
        g = (self.W(x) + self.U(h)).view(*x.shape[:-1], 4, -1)
        c_next = torch.sigmoid(g[..., 0, :]) * c + torch.sigmoid(g[..., 1, :]) * torch.tanh(g[..., 3, :])
        return torch.sigmoid(g[..., 2, :]) * torch.tanh(c_next), c_next
'''


@pytest.fixture
def lstm_cells(tmp_path, monkeypatch):
    (tmp_path / "cells.py").write_text(LSTM_CELLS)
    monkeypatch.chdir(tmp_path)


def test_an_lstm_cells_gate_order_is_read_from_the_names_it_unpacks(lstm_cells):
    """f, i, o, c̃ = split(…): the stacked weights map in that order, and `return h_next, c_next` names both
    outputs (a stale c_t cannot hide behind h_t)."""
    inferred = explain("cells.py:KerasOrderCell", "lstm.hidden")
    assert inferred.params == {
        "W.weight": "W_f, W_i, W_o, W_c -> (4 d_h) d_e",
        "W.bias": "b_f, b_i, b_o, b_c -> (4 d_h)",
        "U.weight": "U_f, U_i, U_o, U_c -> (4 d_h) d_h",
    }
    assert inferred.forward.layout.endswith("-> h_t=b d_h, c_t=b d_h")
    assert audit("cells.py:KerasOrderCell", "lstm.hidden", profile="quick").verdict == "pass"


def test_gate_names_decide_the_order_so_swapped_gates_stay_a_bug(lstm_cells):
    """Values never choose: the swapped cell gets the order its names state, and fails."""
    assert explain("cells.py:SwappedGatesCell", "lstm.hidden").params["W.weight"].startswith("W_f, W_i")
    report = audit("cells.py:SwappedGatesCell", "lstm.hidden", profile="quick")
    assert report.verdict == "fail" and report.inferred is not None


def test_gates_the_code_never_names_are_not_inferred(lstm_cells):
    with pytest.raises(
        Exception, match=r"cannot tell which of lstm.hidden's parameters the module's W.weight"
    ):
        explain("cells.py:UnnamedGatesCell", "lstm.hidden")


# --- nanoGPT's block, as its model.py writes it -----------------------------------------------------------
#: nanoGPT's style: a GPTConfig dataclass, a LayerNorm whose ε is a literal in its forward, SDPA with
#: is_causal=True inside a CausalSelfAttention, an exact GELU in the MLP.
NANOGPT = '''import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
'''


def test_nanogpts_block_is_bound_from_what_its_code_says(tmp_path, monkeypatch):
    """The config dataclass is built from its fields, ε is read from F.layer_norm(…, 1e-5), the causal mask
    from is_causal=True in a submodule; the verdict is nanoGPT's real difference from GPT-2: an exact GELU."""
    (tmp_path / "nanogpt.py").write_text(NANOGPT)
    monkeypatch.chdir(tmp_path)
    inferred = explain("nanogpt.py:Block", "gpt2.block")
    assert inferred.init == {"config": "GPTConfig(block_size=64, n_head=M, n_embd=d_e)"}
    assert inferred.constants == {"eps": 1e-5} and inferred.forward.mask == "causal"
    report = audit("nanogpt.py:Block", "gpt2.block", profile="quick")
    assert (report.verdict, report.matched) == ("variant", ["gelu_eps"]), report.summary


def test_a_function_that_calls_sdpa_with_is_causal_is_held_to_the_causal_mask():
    def attention(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    assert explain(attention, "attention.scaled_dot_product").mask == "causal"
    assert audit(attention, "attention.scaled_dot_product", profile="quick").verdict == "pass"


def test_a_failing_stack_is_traced_down_to_the_attention_inside_its_first_layer(tmp_path, monkeypatch):
    """nanoGPT's blocks in a stack: when the stack fails, its first layer is audited as the block, and when
    that fails too, the layer's own parts (h.0.attn, h.0.mlp, its norms) with the maps the stack's inference
    gave them. (The audits are stand-ins that fail every block: this holds the descent; the zoo's
    gpt2_block_width_scaled_attention holds what a real part audit says.)"""
    from lmspec.verify.audit.parts import audit_parts
    from lmspec.verify.audit.report import AuditReport

    stack = "\n\nclass GPT(nn.Module):\n    def __init__(self, config):\n        super().__init__()\n"
    stack += "        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])\n\n"
    stack += "    def forward(self, x):\n        for block in self.h:\n            x = block(x)\n"
    stack += "        return x\n"
    (tmp_path / "stack.py").write_text(NANOGPT + stack)
    monkeypatch.chdir(tmp_path)
    from lmspec.verify.audit.loading import load

    cls = load("stack.py:GPT")
    eq = spec.get("transformer.stack[gelu_eps]")
    inferred = explain(cls, eq.id)
    seen = []

    def fake_audit(sub, callee, *, params, **kwargs):
        seen.append((kwargs["name"].split(" ")[0], callee, params))
        verdict = "fail" if callee.startswith("transformer.block") else "pass"
        return AuditReport(target=kwargs["name"], equation=callee, verdict=verdict, checks=[], summary="")

    parts, notes = audit_parts(cls, eq, inferred, mask="causal", audit=fake_audit)
    assert not [n for n in notes if "not audited alone" in n], notes
    assert {p.path: (p.equation, p.verdict) for p in parts} == {
        "h.0": ("transformer.block_pre_ln[gelu_eps]", "fail"),
        "h.0.ln_1": ("norm.layer_norm[eps]", "pass"),  # the stack's norms, audited once
        "h.0.ln_2": ("norm.layer_norm[eps]", "pass"),
        "h.0.attn": ("attention.multi_head", "pass"),  # inside the failing layer
        "h.0.mlp": ("transformer.ffn[gelu]", "pass"),
    }
    by_path = {path: params for path, _, params in seen}
    assert by_path["h.0.attn"]["c_attn.weight"] == "W_Q, W_K, W_V -> (3 M d_k) d_e"
    assert by_path["h.0.ln_2"] == {"weight": "alpha", "bias": "beta"}


# --- the Annotated Transformer's encoder layer, built by a factory -----------------------------------------
#: Its style: a function that builds the layer, clones(), SublayerConnection with its own LayerNorm (a_2, b_2,
#: ε on the standard deviation), the four projections in one ModuleList, a −1e9 fill, a ReLU FFN.
ANNOTATED = """import copy
import math

import torch
import torch.nn as nn


def clones(module, N):
    return nn.ModuleList([copy.deepcopy(module) for _ in range(N)])


class LayerNorm(nn.Module):
    def __init__(self, features, eps=1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


class SublayerConnection(nn.Module):
    def __init__(self, size, dropout):
        super().__init__()
        self.norm = LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, sublayer):
        return x + self.dropout(sublayer(self.norm(x)))


def attention(query, key, value, mask=None, dropout=None):
    d_k = query.size(-1)
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = scores.softmax(dim=-1)
    if dropout is not None:
        p_attn = dropout(p_attn)
    return torch.matmul(p_attn, value), p_attn


class MultiHeadedAttention(nn.Module):
    def __init__(self, h, d_model, dropout=0.1):
        super().__init__()
        assert d_model % h == 0
        self.d_k = d_model // h
        self.h = h
        self.linears = clones(nn.Linear(d_model, d_model), 4)
        self.attn = None
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, query, key, value, mask=None):
        if mask is not None:
            mask = mask.unsqueeze(1)
        nbatches = query.size(0)
        query, key, value = [
            lin(x).view(nbatches, -1, self.h, self.d_k).transpose(1, 2)
            for lin, x in zip(self.linears, (query, key, value))
        ]
        x, self.attn = attention(query, key, value, mask=mask, dropout=self.dropout)
        x = x.transpose(1, 2).contiguous().view(nbatches, -1, self.h * self.d_k)
        return self.linears[-1](x)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.w_2(self.dropout(self.w_1(x).relu()))


class EncoderLayer(nn.Module):
    def __init__(self, size, self_attn, feed_forward, dropout):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = clones(SublayerConnection(size, dropout), 2)
        self.size = size

    def forward(self, x, mask):
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, mask))
        return self.sublayer[1](x, self.feed_forward)


def make_layer(d_model, h, d_ff):
    attn, ff = MultiHeadedAttention(h, d_model, 0.0), PositionwiseFeedForward(d_model, d_ff, 0.0)
    return EncoderLayer(d_model, attn, ff, 0.0)
"""


def test_a_factory_is_bound_as_the_module_it_builds(tmp_path, monkeypatch):
    """make_layer(d_model, h, d_ff) returns a module: it is bound as one (its arguments as sizes by name), the
    sublayer.0 / sublayer.1 norms are the block's first and second, and a failing layer's attention part is
    the module holding the linears, not the ModuleList."""
    from lmspec.verify.audit.parts import audit_parts
    from lmspec.verify.audit.report import AuditReport

    (tmp_path / "annotated.py").write_text(ANNOTATED)
    monkeypatch.chdir(tmp_path)
    inferred = explain("annotated.py:make_layer", "transformer.block_pre_ln")
    assert inferred.init == {"d_model": "d_e", "h": "M", "d_ff": "d_f"}
    assert inferred.params["sublayer.0.norm.a_2"] == "alpha_1"
    assert inferred.params["sublayer.1.norm.b_2"] == "beta_2"
    assert inferred.params["self_attn.linears.3.weight"] == "W_O -> d_e M*d_v"
    assert inferred.constants == {"eps": 1e-6}
    seen = {}

    def fake_audit(sub, callee, *, params, **kwargs):
        seen[kwargs["name"].split(" ")[0]] = params
        return AuditReport(target=kwargs["name"], equation=callee, verdict="pass", checks=[], summary="")

    from lmspec.verify.audit.loading import load

    eq = spec.get("transformer.block_pre_ln")
    _, notes = audit_parts(load("annotated.py:make_layer"), eq, inferred, mask=None, audit=fake_audit)
    assert not [n for n in notes if "not audited alone" in n], notes
    assert sorted(seen) == ["feed_forward", "self_attn", "sublayer.0.norm", "sublayer.1.norm"]
    assert seen["self_attn"]["linears.0.weight"] == "W_Q -> (M d_k) d_e"


# --- torch's recurrent layers and embeddings, whole models, tables oriented by their shapes ----------------
#: torch.nn's classes as inference binds them: what the built-ins (verify/audit/adapters/torch_recurrent.py,
#: torch_cells.py, torch_lm.py) write by hand — the spec's bias in bias_ih, bias_hh = 0, torch's gate order
#: i, f, g, o, hx = (h_0, c_0), sequence-first because batch_first=False.
TORCH_RECURRENT = {
    "RNNCell": ("rnn.elman_step", {"weight_ih": "W_x", "weight_hh": "W_h", "bias_ih": "b_h", "bias_hh": "0"},
                "input:x_t=b d_e, hx:h_prev=b d_h -> b d_h"),
    "LSTMCell": ("lstm.hidden", {"weight_ih": "W_i, W_f, W_c, W_o -> (4 d_h) d_e", "bias_hh": "0",
                                 "weight_hh": "U_i, U_f, U_c, U_o -> (4 d_h) d_h"},
                 "input:x_t=b d_e, hx=(h_prev=b d_h, c_prev=b d_h) -> h_t=b d_h, c_t=b d_h"),
    "RNN": ("rnn.elman_step[sequence]", {"weight_hh_l0": "W_h", "bias_hh_l0": "0"},
            "input:X=n b d_e -> n b d_h, _"),
    "LSTM": ("lstm.hidden[sequence]", {"bias_ih_l0": "b_i, b_f, b_c, b_o -> (4 d_h)", "bias_hh_l0": "0"},
             "input:X=n b d_e -> n b d_h, _"),
    "Embedding": ("lm.embedding", {"weight": "E -> v d_e"}, "input:k=b n -> b n d_e"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TORCH_RECURRENT))
def test_torchs_recurrent_layers_and_embedding_are_bound_as_their_built_ins_map_them(name):
    """The constructor read from torch's typed overload (nn.LSTM takes *args), the sequence-first layout from
    the module's batch_first=False (an (n, b, d_e) input fits (b, n, d_e) as well: shapes cannot tell), the
    documented gate order and hx tuple (torch's code is C++), and the second bias zeroed, with a note."""
    as_, maps, layout = TORCH_RECURRENT[name]
    inferred = explain(f"torch.nn:{name}", as_)
    assert {k: inferred.params[k] for k in maps} == maps
    assert inferred.forward.layout == layout
    if "0" in maps.values():
        assert any("is zeroed" in note for note in inferred.notes)


@pytest.mark.parametrize(("name", "as_"), [("LSTMCell", "lstm.hidden"), ("LSTM", "lstm.hidden[sequence]")])
def test_torchs_lstm_audited_with_nothing_written_passes_as_its_built_in_does(name, as_):
    report = audit(f"torch.nn:{name}", as_, profile="quick")
    assert report.verdict == "pass", report.summary


def test_gpt2model_is_bound_whole_as_the_built_in_maps_it():
    """transformers' GPT2Model as gpt2.forward with nothing written: its token and position tables oriented
    by their shapes (Eᵀ, Λᵀ), n_positions = n_max, per-layer maps, ln_f as the final norm (α_e, β_e), and its
    ModelOutput read as a tuple (last_hidden_state first); held to the built-in's form [eps], it passes."""
    inferred = explain("transformers.models.gpt2.modeling_gpt2:GPT2Model", "gpt2.forward")
    assert "n_positions=n_max" in inferred.init["config"]
    maps = {"wte.weight": "E -> v d_e", "wpe.weight": "Lambda -> n_max d_e", "ln_f.weight": "alpha_e",
            "ln_f.bias": "beta_e", "h.{l}.attn.c_attn.weight": "W_Q, W_K, W_V -> d_e (3 M d_k)"}  # fmt: skip
    assert {k: inferred.params[k] for k in maps} == maps
    assert inferred.forward.layout == "input_ids:k=b n -> b n d_e, _"
    report = audit("transformers.models.gpt2.modeling_gpt2:GPT2Model", "gpt2.forward[eps]", profile="quick")
    assert report.verdict == "pass", report.summary


class _ColumnTable(torch.nn.Module):
    """A table stored as the spec writes E (d_e × v, one column per token) and read by columns."""

    def __init__(self, vocab_size, n_embd):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(n_embd, vocab_size))

    def forward(self, idx):
        return self.table[:, idx].movedim(0, -1)


class _RowTable(_ColumnTable):
    """The same lookup with the table stored as nn.Embedding stores it (v × d_e)."""

    def __init__(self, vocab_size, n_embd):
        super().__init__(vocab_size, n_embd)
        self.table = torch.nn.Parameter(torch.randn(vocab_size, n_embd))

    def forward(self, idx):
        return self.table[idx]


def test_a_tables_orientation_comes_from_its_shape_never_its_name():
    assert explain(_ColumnTable, "lm.embedding").params == {"table": "E"}
    assert explain(_RowTable, "lm.embedding").params == {"table": "E -> v d_e"}


def typed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Annotated as most code is: torch.Tensor says nothing about axes."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask == 0, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v


def test_a_function_annotated_with_plain_tensors_is_inferred_as_an_unannotated_one_is():
    """Only jaxtyping annotations state a binding; `torch.Tensor`, `Optional[Tensor]` do not, so such a
    function is inferred (before, it was an error: "parameter 'q' is not a symbol of the spec")."""
    from lmspec.verify.audit.auditor import needs_inference

    assert needs_inference(typed_attention) and not needs_inference(keys_jaxtyped)
    report = audit(typed_attention, "attention.sdpa", profile="quick")
    assert report.verdict == "pass", report.summary
    assert report.inferred["layout"] == "q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v"


def keys_jaxtyped(
    q: Float[torch.Tensor, "n d_k"], k: Float[torch.Tensor, "n d_k"], v: Float[torch.Tensor, "n d_v"]
) -> Float[torch.Tensor, "n d_v"]:
    return (q @ k.T / math.sqrt(q.size(-1))).softmax(-1) @ v


def gated(a, u):
    return torch.sigmoid(a) * u


def test_one_returned_tensor_that_fits_several_alike_outputs_is_an_error_never_a_guess():
    """rnn.gate's outputs m and ũ have one shape: which one a lone tensor is, nothing says (before, the
    first output was taken, and this correct gate would have failed as m). A recurrent step's lone tensor is
    its hidden state (h_t before c_t or a gate), a sequence layer's its H."""
    with pytest.raises(InferenceError, match=r"the shape of each of m, u_tilde: nothing says which"):
        infer_function(gated, spec.get("rnn.gate"))
    report = audit(gated, "rnn.gate", layout="a=b d_h, u=b d_h -> u_tilde=b d_h", profile="quick")
    assert report.verdict == "pass", report.summary


def test_torchs_gru_cell_is_bound_with_its_update_gate_negated_and_the_printed_binding_replays(tmp_path):
    """torch documents its GRU as h' = (1 − z) ⊙ n + z ⊙ h with rows r, z, n: its z is the spec's 1 − z, so
    its z-rows hold −W_z, −U_z, −b_z (`-W_z` in a --param). bias_hh = 0 makes reset_after's b_U 0, stated
    --absent b_U: the verdict is the built-in's (torch.nn.GRUCell[h]: variant reset_after), and the options
    inference prints, given back on the command line, reach it too."""
    inferred = explain("torch.nn:GRUCell", "gru.step")
    assert inferred.params["weight_ih"] == "W_r, -W_z, W -> (3 d_h) d_e" and inferred.absent == ["b_U"]
    out = tmp_path / "report.json"
    argv = [
        "audit",
        "torch.nn:GRUCell",
        "--as",
        "gru.step",
        *inferred.options(),
        "-p",
        "quick",
        "--json",
        str(out),
    ]
    assert main(argv) == 1
    report = json.loads(out.read_text())["reports"][0]
    assert (report["verdict"], report["matched"], report["inferred"]) == ("variant", ["reset_after"], None)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_a_constructor_argument_that_is_a_module_is_built_from_its_annotation():
    """nn.TransformerEncoder(encoder_layer: TransformerEncoderLayer, num_layers): the layer is built from its
    own inferred constructor, the layers map per layer (layers.{l}.…), and the forward's `mask` is torch's
    attention mask added to the scores (its documented meaning, which the generic name does not say). Held
    to the built-in's form, it passes as torch.nn.TransformerEncoder does."""
    inferred = explain("torch.nn:TransformerEncoder", "transformer.stack[post_ln_relu_eps]")
    assert inferred.init == {
        "encoder_layer": "TransformerEncoderLayer(d_model=d_e, nhead=M, dim_feedforward=d_f)",
        "num_layers": "L",
    }
    assert inferred.params["layers.{l}.norm2.bias"] == "beta_2"
    assert inferred.forward.layout == "src:X=n b d_e, mask=n n -> n b d_e"
    assert inferred.forward.mask == "additive"
    report = audit("torch.nn:TransformerEncoder", "transformer.stack[post_ln_relu_eps]", profile="quick")
    assert report.verdict == "pass", report.summary


class _RowsRNNCell(torch.nn.Module):
    """An Elman cell written with raw parameters used as x @ W (in, out), as d2l's RNN from scratch writes
    it: its W_xh is (d_e, d_h) and its square W_hh (in, out) too, which its code says (``h @ self.W_hh``)."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.W_xh = torch.nn.Parameter(torch.randn(input_size, hidden_size))
        self.W_hh = torch.nn.Parameter(torch.randn(hidden_size, hidden_size))
        self.b_h = torch.nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x, h):
        return torch.tanh(x @ self.W_xh + h @ self.W_hh + self.b_h)


class _MixedRNNCell(_RowsRNNCell):
    """The same weights, its square one used (out, in): ``h @ self.W_hh.T`` (as F.linear would)."""

    def forward(self, x, h):
        return torch.tanh(x @ self.W_xh + h @ self.W_hh.T + self.b_h)


class _SilentRNNCell(_RowsRNNCell):
    """The same weights, multiplied by a helper the code does not show: nothing says how W_hh is held."""

    def forward(self, x, h):
        return torch.tanh(_times(x, self.W_xh) + _times(h, self.W_hh) + self.b_h)


def _times(a, b):
    return a @ b


class _SwappedRNNCell(_RowsRNNCell):
    """A bug: the input's weight on the state and the state's on the input (where d_e = d_h they fit)."""

    def forward(self, x, h):
        return torch.tanh(x @ self.W_hh + h @ self.W_xh + self.b_h)


def test_a_square_weight_is_oriented_by_how_the_code_multiplies_by_it():
    """W_hh has no shape that orients it: ``h @ self.W_hh`` holds W_hᵀ (``W_h.T``), ``h @ self.W_hh.T`` W_h
    as it is; both cells are Elman steps and both pass. Where the code does not say, inference refuses
    rather than guess (binding it either way could fail a correct cell)."""
    assert explain(_RowsRNNCell, "rnn.elman_step").params == {
        "W_xh": "W_x -> d_e d_h",
        "W_hh": "W_h.T",
        "b_h": "b_h",
    }
    assert explain(_MixedRNNCell, "rnn.elman_step").params["W_hh"] == "W_h"
    for cell in (_RowsRNNCell, _MixedRNNCell):
        report = audit(cell, "rnn.elman_step", profile="quick")
        assert report.verdict == "pass", report.summary
    with pytest.raises(AuditError, match=r"W_hh is W_h, square, .* --param W_hh=W_h.T where it is stored"):
        explain(_SilentRNNCell, "rnn.elman_step")
    written = {"W_xh": "W_x -> d_e d_h", "W_hh": "W_h.T", "b_h": "b_h"}  # by hand, the same
    report = audit(_SilentRNNCell, "rnn.elman_step", params=written, **_ELMAN_BINDING, profile="quick")
    assert report.verdict == "pass", report.summary
    report = audit(_SilentRNNCell, "rnn.elman_step", params={**written, "W_hh": "W_h"}, **_ELMAN_BINDING,
                   profile="quick")  # fmt: skip
    assert report.verdict == "fail", report.summary  # W_hh read as it is: the cell then computes W_hᵀ h


_ELMAN_BINDING = {
    "init": {"input_size": "d_e", "hidden_size": "d_h"},
    "layout": "x:x_t=b d_e, h:h_prev=b d_h -> b d_h",
}


def test_reading_a_square_weight_from_the_code_never_hides_a_swapped_weight():
    """Orienting W_hh by its use cannot make a wrong cell right: a cell that swaps its two weights is
    refused at the probe's distinct d_e and d_h (no layout fits: an error, never a verdict), and held by hand
    at d_e = d_h, where the shapes fit, it fails."""
    with pytest.raises(AuditError, match="no layout fits rnn.elman_step"):
        audit(_SwappedRNNCell, "rnn.elman_step", profile="quick")
    params = {"W_xh": "W_x -> d_e d_h", "W_hh": "W_h.T", "b_h": "b_h"}
    report = audit(_SwappedRNNCell, "rnn.elman_step", params=params, **_ELMAN_BINDING, derive={"d_e": "d_h"},
                   profile="quick")  # fmt: skip
    assert report.verdict == "fail", report.summary


def test_a_transposed_parameter_is_only_a_matrix():
    params = {"W_xh": "W_x -> d_e d_h", "W_hh": "W_h", "b_h": "b_h.T"}
    report = audit(_RowsRNNCell, "rnn.elman_step", params=params, **_ELMAN_BINDING, profile="quick")
    assert report.verdict == "error" and "b_h.T transposes a matrix; b_h is not one" in report.summary


# --- torch's C functions and losses' label conventions ---------------------------------------------------
def test_a_c_function_is_read_by_the_signature_its_documentation_opens_with():
    """F.scaled_dot_product_attention has no signature Python can read (it is C): its docstring's
    ``scaled_dot_product_attention(query, key, value, attn_mask=None, …)`` gives the names, so it is bound
    with nothing written (attn_mask: torch's float mask, added), and passes as its built-in [float_mask]
    does."""
    from lmspec.verify.audit.loading import documented_signature, load

    sdpa = load("torch.nn.functional:scaled_dot_product_attention")
    assert list(inspect.signature(sdpa).parameters)[:5] == ["query", "key", "value", "attn_mask", "dropout_p"]
    assert inspect.signature(sdpa).parameters["is_causal"].default is False
    assert str(documented_signature(torch.nn.functional.hardtanh_)) == "(input, min_val=-1.0, max_val=1.0)"
    inferred = explain("torch.nn.functional:scaled_dot_product_attention", "attention.scaled_dot_product")
    assert inferred.layout.startswith("query:Q=b h n d_k, key:K=b h n d_k, value:V=b h n d_v, attn_mask=")
    assert inferred.mask == "additive"
    report = audit("torch.nn.functional:scaled_dot_product_attention", "attention.scaled_dot_product",
                   profile="quick")  # fmt: skip
    assert report.verdict == "pass", report.summary


def test_f_cross_entropy_is_bound_with_its_documented_ignore_index_and_reduction():
    """F.cross_entropy's own default ignore_index (-100) marks padding, and its default reduction ('mean')
    gives one value for the batch: the mean over the batch's kept tokens (--pool tokens). It passes, as its
    built-in does."""
    inferred = explain("torch.nn.functional:cross_entropy", "lm.cross_entropy")
    assert (inferred.layout, inferred.ignore_index, inferred.pool, inferred.labels) == (
        "input:Z=b v n, target:k=b n -> loss=()", -100, "tokens", None,
    )  # fmt: skip
    assert inferred.options()[-4:] == ["--ignore-index", "-100", "--pool", "tokens"]
    report = audit("torch.nn.functional:cross_entropy", "lm.cross_entropy", profile="quick")
    assert report.verdict == "pass", report.summary
    assert json.loads(json.dumps(report.inferred))["pool"] == "tokens"


def two_pad_values(logits, targets):
    flat = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
    return flat * (targets != -100).any()


def summed(logits, targets):
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), reduction="sum")


def plain_loss(logits, targets):  # no ignore_index named: torch's default, -100
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def exp_of(logits, labels):  # the conventions of the loss it hands its labels to
    return torch.exp(hf_style(logits, labels))


def hf_style(logits, labels):
    shift_logits, shift_labels = logits[..., :-1, :].contiguous(), labels[..., 1:].contiguous()
    return F.cross_entropy(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1))


def test_a_losss_label_conventions_are_read_from_its_code():
    """The pad value it passes or compares with, torch's default where it names none, labels sliced [..., 1:]
    (also in the loss it calls), one value for the batch: what --ignore-index, --labels and --pool say."""
    got = infer_function(plain_loss, spec.get("lm.cross_entropy"))
    assert (got.labels, got.ignore_index, got.pool) == (None, -100, "tokens")
    got = infer_function(exp_of, spec.get("lm.perplexity"))
    assert (got.labels, got.ignore_index, got.pool) == ("shift", -100, "tokens")
    with pytest.raises(InferenceError, match="marks padding with -100 and -1"):
        infer_function(two_pad_values, spec.get("lm.cross_entropy"))
    with pytest.raises(InferenceError, match="reduces with sum"):
        infer_function(summed, spec.get("lm.cross_entropy"))


def test_torchs_decoder_layer_is_bound_with_its_cross_attention_and_the_causal_tgt_mask():
    """nn.TransformerDecoderLayer: ``memory`` is the encoder's states, ``multihead_attn`` the cross-attention
    (W_Q_cross …), norm3 the third layer norm, and ``tgt_mask`` gets the causal mask the equation builds in
    (``causal(n_d)``: what torch's documentation says to give it), sequence-first by its batch_first=False.
    Held to the built-in's form, it passes as torch.nn.TransformerDecoderLayer does; with tgt_mask left out,
    a user's layout names the causal property that then fails."""
    inferred = explain("torch.nn:TransformerDecoderLayer", "transformer.decoder_block[eps]")
    maps = {"multihead_attn.in_proj_weight": "W_Q_cross, W_K_cross, W_V_cross -> (3 M d_k) d_e",
            "multihead_attn.out_proj.bias": "b_O_cross", "self_attn.out_proj.bias": "b_O",
            "norm3.weight": "alpha_3", "norm2.bias": "beta_2"}  # fmt: skip
    assert {k: inferred.params[k] for k in maps} == maps
    assert (
        inferred.forward.layout
        == "tgt:H=n_d b d_e, memory:H_enc=n_e b d_e, tgt_mask:causal(n_d) -> n_d b d_e"
    )
    report = audit("torch.nn:TransformerDecoderLayer", "transformer.decoder_block[eps]", profile="quick")
    assert report.verdict == "pass", report.summary
    written = {"init": inferred.init, "params": inferred.params, "derive": inferred.derive,
               "constants": inferred.constants}  # fmt: skip
    unmasked = audit("torch.nn:TransformerDecoderLayer", "transformer.decoder_block[eps]", profile="quick",
                     layout="tgt:H=n_d b d_e, memory:H_enc=n_e b d_e -> n_d b d_e", **written)  # fmt: skip
    assert "property:decoder_causal" in {c.name for c in unmasked.failures}
    wrong_axis = audit("torch.nn:TransformerDecoderLayer", "transformer.decoder_block[eps]", profile="quick",
                       layout="tgt:H=n_d b d_e, memory:H_enc=n_e b d_e, tgt_mask:causal(n) -> n_d b d_e",
                       **written)  # fmt: skip
    assert (
        wrong_axis.verdict == "error"
        and "'n' is not an axis of transformer.decoder_block" in wrong_axis.summary
    )


def test_a_causal_setting_in_a_layout_is_the_additive_causal_mask():
    from lmspec.verify.binding import setting_value

    mask = setting_value("causal(n_d)", {"n_d": 3}, torch.float64, "cpu")
    assert mask.tolist() == [[0.0, -math.inf, -math.inf], [0.0, 0.0, -math.inf], [0.0, 0.0, 0.0]]
    keep = setting_value("causal_keep(n_d)", {"n_d": 3}, torch.float64, "cpu")
    assert keep.tolist() == [[True, False, False], [True, True, False], [True, True, True]]


class _KeepMaskDecoderLayer(torch.nn.Module):
    """A decoder layer written outside torch whose tgt_mask is a keep mask (the Annotated Transformer's
    ``masked_fill(mask == 0, -1e9)``): its name does not say so, so inference asks, never passes torch's
    additive mask (which would mask what may be attended and fail a correct layer)."""

    def __init__(self, d_model, nhead, dim_feedforward):
        super().__init__()
        self.inner = torch.nn.TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout=0.0)

    def forward(self, tgt, memory, tgt_mask=None):
        return self.inner(tgt, memory, tgt_mask=None if tgt_mask is None else tgt_mask.to(tgt.dtype).log())


def test_a_tgt_mask_outside_torch_is_not_given_a_convention_its_name_does_not_say():
    with pytest.raises(
        AuditError, match=r"write tgt_mask:causal\(n_d\) in --layout .* tgt_mask:causal_keep\(n_d\)"
    ):
        explain(_KeepMaskDecoderLayer, "transformer.decoder_block[eps]")
    inferred = explain("torch.nn:TransformerDecoderLayer", "transformer.decoder_block[eps]")
    report = audit(
        _KeepMaskDecoderLayer,
        "transformer.decoder_block[eps]",
        profile="quick",
        init=inferred.init,
        params={f"inner.{k}": v for k, v in inferred.params.items()},
        derive=inferred.derive,
        constants=inferred.constants,
        layout="tgt:H=n_d b d_e, memory:H_enc=n_e b d_e, tgt_mask:causal_keep(n_d) -> n_d b d_e",
    )
    assert report.verdict == "pass", report.summary


def sample_with_temperature(logits, temperature):
    return torch.softmax(logits / temperature, dim=-1)


def test_a_scalar_the_function_requires_is_bound_as_a_0d_argument():
    """``temperature`` is τ (SCALAR_NAMES), drawn per example and passed as a 0-d tensor, with no batch axes
    (a parameter); it passes lm.temperature."""
    inferred = infer_function(sample_with_temperature, spec.get("lm.temperature"))
    assert inferred.layout == "logits:z=b v, temperature:tau=() -> b v"
    report = audit(sample_with_temperature, "lm.temperature", profile="quick")
    assert report.verdict == "pass", report.summary


class _TransposingAttention(torch.nn.Module):
    """Older code's way round torch's sequence-first MultiheadAttention: batch-first in, transposed for it."""

    def __init__(self, d_model, nhead):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(d_model, nhead)

    def forward(self, x):
        y = x.transpose(0, 1)
        return self.attn(y, y, y, need_weights=False)[0].transpose(0, 1)


def test_torch_layers_inside_a_module_say_its_layout_unless_its_code_swaps_the_axes():
    """A module with no batch_first of its own is laid out as the torch layers inside it say (the zoo's
    word_language_model: sequence-first, which shapes alone could not tell); a module whose code transposes
    the first two axes is left to shapes, and its batch-first layout passes."""
    inferred = explain(_TransposingAttention, "attention.multi_head")
    assert inferred.forward.layout == "x:H=b n d_e -> b n d_e"
    assert audit(_TransposingAttention, "attention.multi_head", profile="quick").verdict == "pass"


def test_a_logits_processor_is_built_with_its_settings_and_called_on_the_scores():
    """transformers' warpers: the constructor's settings by name (temperature is τ, top_k the size k_top),
    called as generate calls them with no previous tokens, and read as what they return, scores. TopK passes
    as its built-in; the temperature warper returns z/τ, the logits of the equation's distribution (the
    variant ``returns logits``; --logits holds it to that form, and it passes)."""
    top_k = explain("transformers:TopKLogitsWarper", "lm.top_k")
    assert top_k.layout == "top_k:k_top, scores:z=b v -> b v"
    assert audit("transformers:TopKLogitsWarper", "lm.top_k", profile="quick").verdict == "pass"
    warmed = audit("transformers:TemperatureLogitsWarper", "lm.temperature", profile="quick")
    assert (warmed.verdict, warmed.matched) == ("variant", ["returns logits"])
    assert warmed.inferred["layout"] == "temperature:tau=(), scores:z=b v -> b v"
    held = audit("transformers:TemperatureLogitsWarper", "lm.temperature", profile="quick", logits=True)
    assert held.verdict == "pass", held.summary
    import transformers  # given as objects, not names, they are read the same way

    assert audit(transformers.TopKLogitsWarper, "lm.top_k", profile="quick").verdict == "pass"
    assert explain(F.scaled_dot_product_attention, "attention.scaled_dot_product").mask == "additive"


def norm_with_default_eps(x, weight, bias, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps)


def norm_with_torchs_eps(x, weight, bias):
    return F.layer_norm(x, x.shape[-1:], weight, bias)


def test_a_functions_eps_is_read_from_its_default_or_torchs():
    """The ε a function fixes: its own argument's default, else torch's documented 1e-5 where it calls
    F.layer_norm without one. Held to the eps form with it, each passes; the ε-free equation names the
    variant with that ε."""
    own = infer_function(norm_with_default_eps, spec.get("norm.layer_norm[eps]"))
    assert own.constants == {"eps": 1e-6} and own.options()[:2] == ["--constant", "eps=1e-06"]
    assert infer_function(norm_with_torchs_eps, spec.get("norm.layer_norm[eps]")).constants == {"eps": 1e-5}
    assert audit(norm_with_default_eps, "norm.layer_norm[eps]", profile="quick").verdict == "pass"
    report = audit(norm_with_torchs_eps, "norm.layer_norm", profile="quick")
    assert (report.verdict, report.matched) == ("variant", ["eps"])


class _Right(torch.nn.Module):
    def forward(self, x):
        return x @ self.W + torch.matmul(x, self.W) + x.matmul(self.W)


class _Left(torch.nn.Module):
    def forward(self, x):
        return self.W @ x


class _RightTransposed(torch.nn.Module):
    def forward(self, x):
        return x @ self.W.T + x @ self.W.t() + F.linear(x, self.W)


class _Neither(torch.nn.Module):
    def forward(self, x):
        return _times(x, self.W)


class _Both(torch.nn.Module):
    def forward(self, x):
        return x @ self.W + self.W @ x


@pytest.mark.parametrize(
    ("cls", "side"),
    [(_Right, "in_out"), (_Left, "out_in"), (_RightTransposed, "out_in"), (_Neither, None), (_Both, None)],
)
def test_weight_side_reads_how_the_code_multiplies_by_a_raw_weight(cls, side):
    from lmspec.verify.audit.infer._code import weight_side

    assert weight_side(cls, "W") == side
    assert weight_side(cls, "V") is None  # another weight: the code says nothing of it


@pytest.mark.parametrize(
    ("body", "axis"),
    [("for X in inputs:\n        pass", 0), ("for X in inputs.unbind(1):\n        pass", 1),
     ("for t in range(5):\n        y = inputs[:, t]", 1), ("for t in range(5):\n        y = inputs[t]", 0),
     ("for X in range(3):\n        pass", None), ("y = inputs[0]", None)],
)  # fmt: skip
def test_stepped_axis_reads_which_axis_a_loop_steps_along(body, axis, tmp_path):
    from lmspec.verify.audit.infer._code import stepped_axis

    file = tmp_path / "stepper.py"
    file.write_text(f"def forward(self, inputs, other=None):\n    {body}\n")
    namespace: dict = {}
    exec(compile(file.read_text(), str(file), "exec"), namespace)
    import linecache

    linecache.checkcache(str(file))
    assert stepped_axis(namespace["forward"]) == axis


class _TaggedCell(torch.nn.Module):
    """An RNN cell whose constructor also takes a size no equation names (a tag count for a later head)."""

    def __init__(self, input_size, hidden_size, tag_count):
        super().__init__()
        self.cell = torch.nn.RNNCell(input_size, hidden_size)
        self.tag_count = tag_count

    def forward(self, x, h):
        return self.cell(x, h)


def test_an_init_given_for_one_argument_leaves_the_others_to_inference():
    """``--init tag_count=3`` says what no name could; input_size and hidden_size are still read as d_e and
    d_h (before, one --init made the user write them all)."""
    with pytest.raises(AuditError, match="constructor argument 'tag_count'"):
        explain(_TaggedCell, "rnn.elman_step")
    report = audit(_TaggedCell, "rnn.elman_step", init={"tag_count": "3"}, profile="quick")
    assert report.verdict == "pass", report.summary
    assert report.inferred["init"] == {"input_size": "d_e", "hidden_size": "d_h", "tag_count": "3"}


class _WideHeadsAttention(torch.nn.Module):
    """Peter Bloem's "transformers from scratch" attention: every head as wide as the model (d_k = d_e), q
    and k each scaled by k^(1/4)."""

    def __init__(self, k, heads=8):
        super().__init__()
        self.k, self.heads = k, heads
        self.tokeys = torch.nn.Linear(k, k * heads, bias=False)
        self.toqueries = torch.nn.Linear(k, k * heads, bias=False)
        self.tovalues = torch.nn.Linear(k, k * heads, bias=False)
        self.unifyheads = torch.nn.Linear(heads * k, k)

    def forward(self, x):
        b, t, k = x.size()
        h = self.heads
        queries = self.toqueries(x).view(b, t, h, k).transpose(1, 2).reshape(b * h, t, k)
        keys = self.tokeys(x).view(b, t, h, k).transpose(1, 2).reshape(b * h, t, k)
        values = self.tovalues(x).view(b, t, h, k).transpose(1, 2).reshape(b * h, t, k)
        dot = torch.bmm(queries / k ** (1 / 4), (keys / self.key_scale(k)).transpose(1, 2))
        out = torch.bmm(F.softmax(dot, dim=2), values).view(b, h, t, k)
        return self.unifyheads(out.transpose(1, 2).reshape(b, t, h * k))

    def key_scale(self, k):
        return k ** (1 / 4)


class _WideHeadsHalfScaled(_WideHeadsAttention):
    """A bug: the keys left unscaled, so the scores are divided by k^(1/4), not √k."""

    def key_scale(self, k):
        return 1.0


def test_heads_as_wide_as_the_model_are_read_from_the_projections_shapes():
    """``nn.Linear(k, k * heads)``: M·d_e rows where d_e = M·d_k was assumed, so d_k = d_v = d_e (``--init
    k=d_e`` says what ``k`` is; ``heads`` is still read as M). A fused q/k/v projection's 3·d_e never reads
    as wide (M ≥ 4 at the probe). The same binding fails a module that scales only the queries."""
    inferred = explain_module(_WideHeadsAttention, "attention.multi_head", init={"k": "d_e"})
    assert inferred.derive == {"d_k": "d_e", "d_v": "d_e"} and inferred.init == {"heads": "M", "k": "d_e"}
    assert (
        audit(_WideHeadsAttention, "attention.multi_head", init={"k": "d_e"}, profile="quick").verdict
        == "pass"
    )
    report = audit(_WideHeadsHalfScaled, "attention.multi_head", init={"k": "d_e"}, profile="quick")
    assert report.verdict == "fail" and report.inferred["derive"] == {"d_k": "d_e", "d_v": "d_e"}


def explain_module(cls, as_: str, init: dict):
    """infer_module with a partial --init (``explain`` takes none)."""
    from lmspec.verify.audit.infer import infer_module

    return infer_module(cls, spec.get(as_), init=init)


class _UnusedLazyLayer(torch.nn.Module):
    """An FFN with a lazy layer its forward never calls: nothing gives that layer a shape."""

    def __init__(self, d_model, d_ff):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(d_model, d_ff), torch.nn.Linear(d_ff, d_model)
        self.spare = torch.nn.LazyLinear(d_model)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_a_lazy_layer_no_call_shapes_is_an_error_that_names_it():
    with pytest.raises(InferenceError, match=r"lazy parameters spare.weight, spare.bias of _UnusedLazyLayer"):
        explain_module(_UnusedLazyLayer, "transformer.ffn[relu]", init={})
