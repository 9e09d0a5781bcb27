"""Every id of the catalogue has a spec, an implementation and verification checks.

The ids are those of CATALOGUE.md (the project's equation catalogue for "Anatomy of Neural Language
Models", Saleh & Paquelet 2024), copied here so that a missing equation fails the suite.
"""

import pytest

from lmspec import impl, spec
from lmspec.verify.runner import PROFILES, checks_for

CATALOGUE = {
    "lm": ["chain_rule", "ngram", "one_hot", "embedding", "softmax", "cross_entropy", "perplexity",
           "temperature", "top_k"],
    "ffnn": ["context", "hidden", "output", "loss", "params"],
    "rnn": ["elman_step", "output", "loss", "params", "gate"],
    "lstm": ["gates", "candidate", "cell", "hidden", "params"],
    "gru": ["step"],
    "positional": ["learned", "sinusoidal"],
    "attention": ["projections", "softmax_rows", "causal_mask", "padding_mask", "scaled_dot_product",
                  "multi_head", "cross"],
    "activation": ["relu", "gelu", "gelu_tanh", "sigmoid", "tanh"],
    "norm": ["layer_norm"],
    "transformer": ["input", "residual", "ffn", "block_post_ln", "block_pre_ln", "decoder_block", "stack"],
    "gpt2": ["forward", "lm_head", "loss", "generate"],
    "bert": ["input", "encoder", "mlm_head", "mlm_masking", "mlm_loss", "pooler", "nsp_head", "classifier"],
    "vit": ["patchify", "input", "encoder", "head"],
    "timeseries": ["input", "masked_mse", "patching"],
    "training": ["mle", "softmax_ce_grad", "sgd", "weight_decay", "adamw"],
    # segment and pooler: the tutorial's BERT terms 2 d_e and d_e² + d_e as counts of their own (issue 16 §4)
    "params": ["embedding", "positional", "mha", "ffn", "layer_norm", "block", "stack", "segment", "pooler",
               "gpt2", "bert_backbone", "mlm_head", "bert"],
}  # fmt: skip
IDS = [f"{family}.{name}" for family, names in CATALOGUE.items() for name in names]


def test_the_catalogue_has_every_family_in_the_tutorials_order():
    assert spec.FAMILIES == tuple(CATALOGUE)


@pytest.mark.parametrize("eq_id", IDS)
def test_every_catalogue_id_is_specified_implemented_and_verified(eq_id):
    eq = spec.get(eq_id)
    assert eq.id == eq_id
    assert eq.latex()
    assert eq.reference.section
    fn = impl.implementation(eq_id)
    assert fn.__lmspec_id__ == eq_id
    checks = {c.name for c in checks_for(eq, PROFILES["quick"], seed=0)}
    assert {"impl=oracle", "generated=oracle", "impl=generated"} <= checks


def test_nothing_outside_the_catalogue_is_registered():
    assert sorted(e.id for e in spec.all()) == sorted(IDS)
    assert sorted(impl.implementations()) == sorted(IDS)
