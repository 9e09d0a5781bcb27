"""impl/ parameter counts: the test vectors, real models (lmspec's, torch.nn's, Hugging Face's), and teeth.

Test vectors: CATALOGUE.md ("params — closed forms", the tutorial's test values). The Hugging Face models
are built from their default configurations on the meta device (no weights, nothing downloaded).
"""

import pytest
import torch
from jaxtyping import TypeCheckError
from torch import nn

from lmspec import spec
from lmspec.impl._registry import checked
from lmspec.impl.attention import MultiHeadAttention
from lmspec.impl.bert import BERT, BERTForPreTraining
from lmspec.impl.gpt2 import GPT2
from lmspec.impl.norm import LayerNorm
from lmspec.impl.params import (
    bert,
    bert_backbone,
    block,
    embedding,
    ffn,
    gpt2,
    layer_norm,
    mha,
    mlm_head,
    pooler,
    positional,
    segment,
    stack,
)
from lmspec.impl.positional import LearnedPositionalEncoding
from lmspec.impl.transformer import FFN, TransformerBlock, TransformerStack
from lmspec.spec.presets import PRESETS
from lmspec.verify.properties.params import MODELS, numel
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.targets import ImplTarget

GPT2_SMALL = dict(v=50257, n_max=1024, d_e=768, M=12, d_k=64, d_v=64, d_f=3072, L=12)
BERT_BASE = dict(GPT2_SMALL, v=30522, n_max=512)
# distinct sizes per axis, so that a swapped axis cannot pass
v, n_max, d_e, M, d_k, d_v, d_f, L = 19, 17, 7, 3, 5, 11, 13, 2


# --- the test vectors (CATALOGUE.md) ---------------------------------------------------------------
def test_catalogue_test_vectors():
    assert mha(d_e=512, M=8, d_k=64, d_v=64) == 1_050_624
    assert block(d_e=128, M=8, d_k=16, d_v=16, d_f=2048) == 593_024
    assert stack(d_e=128, M=8, d_k=16, d_v=16, d_f=2048, L=3) == 1_779_072
    assert embedding(v=5000, d_e=128) + positional(n_max=50, d_e=128) == 646_400
    assert mha(768, 12, 64, 64) == 2_362_368
    assert ffn(768, 3072) == 4_722_432
    assert block(768, 12, 64, 64, 3072) == 7_087_872
    assert gpt2(**GPT2_SMALL) == 124_439_808
    assert bert_backbone(**BERT_BASE) == 109_482_240
    assert mlm_head(v=30522, d_e=768) == 622_650
    assert bert(**BERT_BASE) == 110_104_890


def test_hand_derived_counts_at_distinct_sizes():
    # W_Q, W_K 2·3·7·5 = 210; W_V 3·7·11 = 231; W_O 3·11·7 = 231; b_Q, b_K 2·3·5 = 30; b_V 33; b_O 7
    assert mha(d_e, M, d_k, d_v) == 210 + 231 + 231 + 30 + 33 + 7
    assert mha(d_e, M, d_k, d_v, zeta=0) == 210 + 231 + 231
    assert ffn(d_e, d_f) == 13 * 7 + 13 + 7 * 13 + 7
    assert layer_norm(d_e) == 14
    assert block(d_e, M, d_k, d_v, d_f) == 742 + 202 + 28
    assert stack(d_e, M, d_k, d_v, d_f, L) == 2 * 972
    assert gpt2(v, n_max, d_e, M, d_k, d_v, d_f, L) == 19 * 7 + 17 * 7 + 2 * 972 + 14
    assert mlm_head(v, d_e) == 49 + 7 + 14 + 19
    assert (segment(d_e), pooler(d_e)) == (2 * 7, 49 + 7)  # G ∈ ℝ^(7×2); W_p ∈ ℝ^(7×7), b_p ∈ ℝ^7
    # E 19·7, Λ 17·7, G 14, embedding LN 14, the stack 2·972, the pooler 56
    assert bert_backbone(v, n_max, d_e, M, d_k, d_v, d_f, L) == 19 * 7 + 17 * 7 + 14 + 14 + 2 * 972 + 56


def test_bad_sizes_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match=r"^params\.mha: sizes must be positive, found d_k=0, d_v=-1$"):
        mha(d_e=4, M=2, d_k=0, d_v=-1)
    with pytest.raises(ValueError, match=r"^params\.mha: zeta switches the biases off \(0\) or on \(1\)"):
        mha(4, 2, 2, 2, zeta=2)
    with pytest.raises(ValueError, match=r"^params\.stack: sizes must be positive, found L=0$"):
        stack(4, 2, 2, 2, 8, L=0)
    with pytest.raises(TypeCheckError, match="parameter 'd_e'"):
        ffn(4.0, 8)  # a size is an int


# --- lmspec's own models and torch.nn's ------------------------------------------------------------
def test_impl_models_hold_the_counted_parameters():
    assert numel(MultiHeadAttention(d_e, M, d_k, d_v)) == mha(d_e, M, d_k, d_v)
    assert numel(FFN(d_e, d_f)) == ffn(d_e, d_f)
    assert numel(LayerNorm(d_e)) == layer_norm(d_e)
    assert numel(LearnedPositionalEncoding(n_max, d_e)) == positional(n_max, d_e)
    for norm_first in (True, False):  # pre-LN (GPT-2) and post-LN (BERT) blocks count the same
        got = numel(TransformerBlock(d_e, M, d_f, norm_first=norm_first, d_k=d_k, d_v=d_v))
        assert got == block(d_e, M, d_k, d_v, d_f)
        got = numel(TransformerStack(L, d_e, M, d_f, norm_first=norm_first, d_k=d_k, d_v=d_v))
        assert got == stack(d_e, M, d_k, d_v, d_f, L)
    # GPT-2's stack with its final layer norm: the count's N_stack + N_LN
    with_ln = TransformerStack(L, d_e, M, d_f, final_ln=True, d_k=d_k, d_v=d_v)
    assert numel(with_ln) == stack(d_e, M, d_k, d_v, d_f, L) + layer_norm(d_e)


def test_impl_gpt2_and_bert_hold_the_counted_parameters():
    d_e, d_k = 15, 5  # GPT2 and BERT take d_k = d_v = d_e / M
    sizes = dict(v=v, n_max=n_max, d_e=d_e, M=M, d_k=d_k, d_v=d_k, d_f=d_f, L=L)
    assert numel(GPT2(v, n_max, d_e, M, L, d_f)) == gpt2(**sizes)  # the head is E: counted once
    assert numel(BERT(v, n_max, d_e, M, L, d_f)) == bert_backbone(**sizes)
    pretraining = BERTForPreTraining(v, n_max, d_e, M, L, d_f)
    nsp = 2 * d_e + 2  # W_nsp ∈ ℝ^{2×d_e}, b_nsp ∈ ℝ²: outside the tutorial's BERT
    assert numel(pretraining) == bert(**sizes) + nsp
    assert numel(pretraining) - numel(BERT(v, n_max, d_e, M, L, d_f)) - nsp == mlm_head(v, d_e)


def test_torch_nn_modules_hold_the_counted_parameters():
    d_e, d_k = 15, 5  # torch.nn's attention takes d_k = d_v = d_e / M
    assert numel(nn.MultiheadAttention(d_e, M)) == mha(d_e, M, d_k, d_k)
    assert numel(nn.MultiheadAttention(d_e, M, bias=False)) == mha(d_e, M, d_k, d_k, zeta=0)
    layer = nn.TransformerEncoderLayer(d_e, M, d_f, batch_first=True)
    assert numel(layer) == block(d_e, M, d_k, d_k, d_f)
    assert numel(nn.TransformerEncoder(layer, L, enable_nested_tensor=False)) == stack(
        d_e, M, d_k, d_k, d_f, L
    )


def test_every_model_of_the_param_count_property_exists():
    """The property skips a model it cannot import; here each must exist and be counted."""
    sizes = dict(v=v, n_max=n_max, d_e=6, M=M, d_k=2, d_v=2, d_f=d_f, L=L)
    eqs = {eq.invariants[0].options["model"]: eq for eq in spec.select(["params"])}
    eqs["mha_no_bias"] = spec.get("params.mha[no_bias]")
    assert set(MODELS) == set(eqs)
    for key, models in MODELS.items():
        eq = eqs[key]
        want = eq.count(**{a: sizes[a] for a in eq.axes})
        for model in models:
            assert model.count({a: sizes[a] for a in eq.axes}) == want, model.name


# --- the verifier ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_params_family_passes_verification(seed):
    results = verify(spec.select(["params"]), "quick", seed)
    failures = [f"{r.equation} {r.check}: {r.message}" for r in results if not r.passed]
    assert not failures
    assert len(results) == 13 * 4  # impl=oracle, generated=oracle, impl=generated, property:param_count


@checked
def gpt2_untied(v: int, n_max: int, d_e: int, M: int, d_k: int, d_v: int, d_f: int, L: int) -> int:
    # counts an output layer of its own, as if Ŷ = softmax(W_out H) with W_out ∈ ℝ^{v×d_e}
    return gpt2(v, n_max, d_e, M, d_k, d_v, d_f, L) + v * d_e


@checked
def mha_biases_once(d_e: int, M: int, d_k: int, d_v: int) -> int:
    # counts b_Q, b_K, b_V once instead of once per head
    return 2 * M * d_e * (d_k + d_v) + 2 * d_k + d_v + d_e


@checked
def block_one_layer_norm(d_e: int, M: int, d_k: int, d_v: int, d_f: int) -> int:
    return mha(d_e, M, d_k, d_v) + ffn(d_e, d_f) + layer_norm(d_e)


@checked
def backbone_without_pooler(
    v: int, n_max: int, d_e: int, M: int, d_k: int, d_v: int, d_f: int, L: int
) -> int:
    # Hugging Face's BertForMaskedLM has no pooler; the tutorial's backbone has one
    return bert_backbone(v, n_max, d_e, M, d_k, d_v, d_f, L) - d_e * d_e - d_e


WRONG = [
    ("untied GPT-2 head", "params.gpt2", gpt2_untied),
    ("MHA biases not per head", "params.mha", mha_biases_once),
    ("one layer norm per block", "params.block", block_one_layer_norm),
    ("BERT backbone without pooler", "params.bert_backbone", backbone_without_pooler),
]


@pytest.mark.parametrize(("bug", "eq_id", "fn"), WRONG, ids=[w[0] for w in WRONG])
def test_wrong_counts_are_caught_by_every_check(bug, eq_id, fn):
    eq = spec.get(eq_id)
    target = ImplTarget(eq, fn, name=f"wrong[{bug}]")
    results = [run_check(c, PROFILES["default"], 0) for c in checks_for(eq, PROFILES["default"], 0, target)]
    failed = {r.check for r in results if not r.passed}
    assert failed == {"impl=oracle", "impl=generated", "property:param_count"}, bug
    prop = next(r for r in results if r.check == "property:param_count")
    assert prop.message.startswith(f"wrong[{bug}] violates param_count: ")
    assert " parameters at " in prop.message and " holds " in prop.message


def test_the_no_bias_variant_against_an_implementation_without_biases():
    @checked
    def mha_no_bias(d_e: int, M: int, d_k: int, d_v: int) -> int:
        return mha(d_e, M, d_k, d_v, zeta=0)

    var = spec.get("params.mha[no_bias]")
    for wrong, fn in ((False, mha_no_bias), (True, mha)):
        target = ImplTarget(var, fn, name="zeta")
        results = [run_check(c, PROFILES["quick"], 0) for c in checks_for(var, PROFILES["quick"], 0, target)]
        assert all(r.passed for r in results) != wrong, [r.message for r in results]


# --- Hugging Face (transformers==5.23.0), built on the meta device ----------------------------------
@pytest.fixture(scope="module")
def hf():
    import transformers  # the [hf] extra, also in [dev]; imported here: it takes seconds

    return transformers


def _hf_count(cls, config, **kwargs) -> int:
    with torch.device("meta"):
        model = cls(config, **kwargs)
    return numel(model)  # a tied Parameter (lm_head = wte, the MLM decoder = word embeddings) counts once


def test_hf_gpt2_small(hf):
    # GPT2LMHeadModel(GPT2Config()): GPT-2 small; lm_head.weight is wte.weight
    assert _hf_count(hf.GPT2LMHeadModel, hf.GPT2Config()) == gpt2(**GPT2_SMALL) == 124_439_808
    assert _hf_count(hf.GPT2Model, hf.GPT2Config()) == 124_439_808  # the tied head adds nothing


def test_hf_bert_base(hf):
    config = hf.BertConfig()  # BERT-base uncased
    # BertModel: embeddings (word, position, token type, LayerNorm), 12 layers and the pooler
    assert _hf_count(hf.BertModel, config) == bert_backbone(**BERT_BASE) == 109_482_240
    assert pooler(768) == 768 * 768 + 768
    assert _hf_count(hf.BertModel, config, add_pooling_layer=False) == 109_482_240 - pooler(768)
    # the segment embedding (token_type_embeddings, 2 types) and the pooler's dense layer: params.segment,
    # params.pooler
    with torch.device("meta"):
        model = hf.BertModel(config)
    assert numel(model.embeddings.token_type_embeddings) == segment(768) == 1_536
    assert numel(model.pooler) == pooler(768) == 590_592
    pooler_count = pooler(768)
    # BertForMaskedLM builds BertModel without its pooler, and adds the MLM head (transform dense,
    # LayerNorm, the output bias; the decoder weight is the word embedding): N_backbone − (d_e² + d_e) + N_MLM
    assert _hf_count(hf.BertForMaskedLM, config) == 109_482_240 - pooler_count + 622_650 == 109_514_298
    # BertForPreTraining keeps the pooler and adds the NSP head (seq_relationship: 2 d_e + 2 = 1,538)
    assert _hf_count(hf.BertForPreTraining, config) == bert(**BERT_BASE) + 2 * 768 + 2 == 110_106_428


def test_hf_vit_base(hf):
    from lmspec.spec.params import vit_count

    sizes = dict(P=16, C_i=3, H_i=224, W_i=224, n_c=1000, d_e=768, M=12, d_k=64, d_v=64, d_f=3072, L=12)
    classifier = vit_count().count(**sizes)
    # ViTForImageClassification: no pooler, a head over n_c classes: the ViT count itself
    assert _hf_count(hf.ViTForImageClassification, hf.ViTConfig(num_labels=1000)) == classifier == 86_567_656
    # ViTModel: no head (n_c (d_e + 1) = 769,000) but a pooler (d_e² + d_e = 590,592)
    assert _hf_count(hf.ViTModel, hf.ViTConfig()) == classifier - 769_000 + 590_592 == 86_389_248


def _hf_preset(hf, name: str) -> int:
    """The Hugging Face count of an `lmspec params` preset, built from the preset's sizes."""
    s = PRESETS[name].sizes
    assert s["d_k"] == s["d_v"] == s["d_e"] // s["M"]  # Hugging Face ties the head widths
    if name.startswith("gpt2"):
        config = hf.GPT2Config(
            vocab_size=s["v"], n_positions=s["n_max"], n_embd=s["d_e"], n_layer=s["L"], n_head=s["M"],
            n_inner=s["d_f"],
        )  # fmt: skip
        return _hf_count(hf.GPT2LMHeadModel, config)
    if name.startswith("bert"):
        config = hf.BertConfig(
            vocab_size=s["v"], max_position_embeddings=s["n_max"], hidden_size=s["d_e"],
            num_hidden_layers=s["L"], num_attention_heads=s["M"], intermediate_size=s["d_f"],
        )  # fmt: skip
        return _hf_count(hf.BertForPreTraining, config) - (2 * s["d_e"] + 2)  # without the NSP head
    config = hf.ViTConfig(
        image_size=s["H_i"], patch_size=s["P"], num_channels=s["C_i"], hidden_size=s["d_e"],
        num_hidden_layers=s["L"], num_attention_heads=s["M"], intermediate_size=s["d_f"], num_labels=s["n_c"],
    )  # fmt: skip
    return _hf_count(hf.ViTForImageClassification, config)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_of_lmspec_params_matches_hugging_face(hf, name):
    from lmspec.verify.cli.params import report

    assert report(name, [])["total"] == _hf_preset(hf, name)
