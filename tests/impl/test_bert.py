"""impl/ bert: hand-derived values, the masking sampler against its distribution (statistical tests),
the models (parameter counts, the full forward against the spec's composition and against Hugging Face),
runtime shape checks, wrong implementations caught by the verifier, and the verifier on the family."""

import math

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

from lmspec import impl, spec
from lmspec.impl.bert import (
    BERT,
    BERTClassifier,
    BERTForPreTraining,
    classifier,
    embed,
    encoder,
    mlm_head,
    mlm_loss,
    mlm_mask,
    mlm_masking,
    nsp_head,
    pooler,
)
from lmspec.verify.oracle import Oracle
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.targets import ImplTarget

torch.set_default_dtype(torch.float64)
# distinct sizes per axis, so that a swapped axis cannot pass
B, n, n_max, v, d_e, M, L, d_f = 2, 5, 7, 11, 6, 3, 2, 13


# --- hand-derived values ------------------------------------------------------------------------------
def test_embed_looks_up_columns_of_E_Lambda_and_G():
    E = torch.arange(d_e * v, dtype=torch.float64).reshape(d_e, v)
    Lambda, G = torch.zeros(d_e, n_max), torch.zeros(d_e, 2)
    G[:, 1] = 100.0  # segment B shifts every feature alike: no change after the layer norm ...
    Lambda[0, 1] = 1e3  # ... position 2 moves feature 1 only
    k, s = torch.tensor([[3, 7]]), torch.tensor([[0, 1]])
    H0 = embed(k, s, E, Lambda, G, torch.ones(d_e), torch.zeros(d_e))
    # column k of E is (k, v + k, 2v + k, …): equally spaced features, whose LN is fixed
    ramp = torch.arange(d_e, dtype=torch.float64)
    torch.testing.assert_close(H0[0, 0], (ramp - ramp.mean()) / ramp.std(unbiased=False))
    x = E[:, 7] + Lambda[:, 1] + G[:, 1]
    torch.testing.assert_close(H0[0, 1], (x - x.mean()) / x.std(unbiased=False))


def test_embed_rejects_more_tokens_than_positions():
    with pytest.raises(
        ValueError, match="embed: the sequence has n = 8 tokens, more than n_max = 7 positions"
    ):
        embed(torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.long), torch.zeros(d_e, v),
              torch.zeros(d_e, n_max), torch.zeros(d_e, 2), torch.ones(d_e), torch.zeros(d_e))  # fmt: skip


def test_pooler_nsp_classifier_and_loss_by_hand():
    H = torch.tensor([[[0.5, -1.0], [9.0, 9.0]]])  # (1, n = 2, d_e = 2): [CLS] is the first row
    p = pooler(H, torch.eye(2), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(p, torch.tensor([[math.tanh(0.5), 0.0]]))
    y_nsp = nsp_head(torch.ones(3), torch.zeros(2, 3), torch.tensor([math.log(3), 0.0]))
    torch.testing.assert_close(y_nsp, torch.tensor([0.75, 0.25]))
    y = torch.tensor([[0.0], [1.0], [0.0]])
    y_hat, loss = classifier(torch.ones(2), y, torch.zeros(3, 2), torch.log(torch.tensor([1.0, 2.0, 5.0])))
    torch.testing.assert_close(y_hat, torch.tensor([0.125, 0.25, 0.625]))
    assert loss.item() == pytest.approx(math.log(4), rel=1e-15)
    Y = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.3, 0.6], [0.2, 0.7, 0.1]])  # (n, v): row i is token i
    sel = torch.tensor([True, False, True])
    assert mlm_loss(Y, torch.tensor([0, 1, 2]), sel).item() == pytest.approx(-math.log(0.5 * 0.1), rel=1e-15)


def test_mlm_head_rows_are_distributions_and_tied_to_E():
    torch.manual_seed(0)
    H, E = torch.randn(B, n, d_e), torch.randn(d_e, v)
    args = (torch.randn(d_e, d_e), torch.randn(d_e), torch.ones(d_e), torch.zeros(d_e))
    Y = mlm_head(H, *args, E, torch.zeros(v))
    assert Y.shape == (B, n, v)
    torch.testing.assert_close(Y.sum(-1), torch.ones(B, n))
    # scaling the output bias of one entry up makes it the most likely everywhere
    bias = torch.zeros(v)
    bias[4] = 1e3
    assert (mlm_head(H, *args, E, bias).argmax(-1) == 4).all()


# --- masking: the distribution and the sampler ------------------------------------------------------------
V, MASK = 13, 3  # ids 0, 1, 2, 3 are [PAD], [CLS], [SEP], [MASK]


def test_masking_distribution_values():
    Pi, Q = mlm_masking(torch.tensor([1, 7]), torch.tensor([True, False]), MASK, V, dtype=torch.float64)
    torch.testing.assert_close(Pi, torch.tensor([[1, 0, 0, 0], [0.85, 0.12, 0.015, 0.015]]))
    r = 0.015 / V
    want = torch.full((V,), r)
    want[7] += 0.865
    want[MASK] += 0.12
    torch.testing.assert_close(Q[1], want)
    torch.testing.assert_close(Q[0], torch.nn.functional.one_hot(torch.tensor(1), V).double())


def chi2_pvalue(observed: torch.Tensor, expected: torch.Tensor) -> float:
    """P(χ² ≥ statistic) for Pearson's statistic with len − 1 degrees of freedom (regularised upper
    incomplete gamma: the χ²_k survival function is Q(k/2, x/2))."""
    stat = ((observed - expected) ** 2 / expected).sum()
    dof = torch.tensor((len(observed) - 1) / 2, dtype=torch.float64)
    return torch.special.gammaincc(dof, stat / 2).item()


#: False-alarm rate of each statistical test: a correct sampler fails it with probability 1e-6 over the
#: draw of the seed. The seeds are fixed, so each test is deterministic.
ALPHA = 1e-6


def _outcome_counts(k, masked, selected, mask_id=MASK):
    """Counts of the observable outcomes of the maskable tokens: not selected, [MASK], unchanged, other."""
    return torch.stack([
        (~selected).sum(),
        (selected & (masked == mask_id)).sum(),
        (selected & (masked == k)).sum(),
        (selected & (masked != k) & (masked != mask_id)).sum(),
    ]).double()  # fmt: skip


def _expected_outcomes(N):
    """Expected outcome counts of N maskable tokens: a random replacement is uniform over all V ids, so it
    is [MASK] or the original token 1/V of the time."""
    return N * torch.tensor([0.85, 0.12 + 0.015 / V, 0.015 + 0.015 / V, 0.015 * (V - 2) / V])


def _sample(sampler, seed=2024, rows=4000, cols=50):
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(4, V, (rows, cols), generator=g)  # ordinary tokens ...
    k[:, 0], k[:, -1] = 1, 2  # ... between [CLS] and [SEP]
    special = k < 4
    masked, selected = sampler(k, special, MASK, V, g)
    return k, special, masked, selected


def test_sampler_outcome_frequencies_match_15_80_10_10():
    k, special, masked, selected = _sample(mlm_mask)
    keep = ~special
    counts = _outcome_counts(k[keep], masked[keep], selected[keep])
    assert chi2_pvalue(counts, _expected_outcomes(counts.sum())) > ALPHA
    assert (masked[~selected] == k[~selected]).all()  # unselected tokens are never changed


def test_sampler_never_touches_special_tokens():
    k, special, masked, selected = _sample(mlm_mask)
    assert special.sum() == 8000
    assert not selected[special].any()
    assert (masked[special] == k[special]).all()


def test_sampler_draws_the_replacing_token_from_the_spec_distribution():
    # one token (id 7), 200 000 times: the counts of the corrupted ids against the column of Q̃, which
    # puts 0.015 / V on every id, special ones included (Hugging Face samples any id too)
    g = torch.Generator().manual_seed(7)
    k = torch.full((200_000,), 7)
    masked, _ = mlm_mask(k, torch.zeros_like(k, dtype=torch.bool), MASK, V, g)
    observed = torch.bincount(masked, minlength=V).double()
    _, Q = mlm_masking(k[:1], torch.tensor([False]), MASK, V, dtype=torch.float64)
    assert observed[:4].min() > 0  # random replacements hit [PAD], [CLS], [SEP] and [MASK]
    assert chi2_pvalue(observed, 200_000 * Q[0]) > ALPHA


def _no_special_replacements(k, special, mask_id, v, g):
    """A plausible bug: random replacements drawn among ordinary tokens only (ids ≥ 4)."""
    masked, selected = mlm_mask(k, special, mask_id, v, g)
    redraw = selected & (masked < 4) & (masked != mask_id)
    return torch.where(redraw, torch.randint(4, v, k.shape, generator=g), masked), selected


def _select_then_mask_all(k, special, mask_id, v, g):
    """Another: 15% selected and all of them masked (no random or kept tokens)."""
    return mlm_mask(k, special, mask_id, v, g, split=(1.0, 0.0, 0.0))


def test_the_statistical_tests_have_teeth():
    k, special, masked, selected = _sample(_select_then_mask_all)
    counts = _outcome_counts(k[~special], masked[~special], selected[~special])
    assert chi2_pvalue(counts, _expected_outcomes(counts.sum())) < ALPHA
    g = torch.Generator().manual_seed(7)
    k = torch.full((200_000,), 7)
    masked, _ = _no_special_replacements(k, torch.zeros_like(k, dtype=torch.bool), MASK, V, g)
    _, Q = mlm_masking(k[:1], torch.tensor([False]), MASK, V, dtype=torch.float64)
    assert chi2_pvalue(torch.bincount(masked, minlength=V).double(), 200_000 * Q[0]) < ALPHA


def test_hugging_face_collator_samples_from_the_spec_distribution(tmp_path):
    """Audit: DataCollatorForLanguageModeling (transformers 5.23) against bert.mlm_masking, with the same
    statistical tests; a BERT tokenizer over a 13-entry vocabulary written here (no download)."""
    import transformers

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefgh"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizer(str(tmp_path / "vocab.txt"))
    mask_id = tokenizer.mask_token_id
    assert (len(tokenizer), mask_id) == (V, 4)
    collator = transformers.DataCollatorForLanguageModeling(tokenizer, seed=0)
    g = torch.Generator().manual_seed(11)
    k = torch.randint(5, V, (4000, 50), generator=g)
    k[:, 0], k[:, -1] = 2, 3  # [CLS] … [SEP]
    special = k < 5
    masked, labels = collator.torch_mask_tokens(k.clone(), special_tokens_mask=special.long())
    selected = labels != -100
    assert not selected[special].any() and (masked[special] == k[special]).all()
    counts = _outcome_counts(k[~special], masked[~special], selected[~special], mask_id)
    assert chi2_pvalue(counts, _expected_outcomes(counts.sum())) > ALPHA
    one = torch.full((200_000,), 7)
    masked, _ = collator.torch_mask_tokens(one.clone(), special_tokens_mask=torch.zeros_like(one))
    _, Q = mlm_masking(one[:1], torch.tensor([False]), mask_id, V, dtype=torch.float64)
    assert chi2_pvalue(torch.bincount(masked, minlength=V).double(), 200_000 * Q[0]) > ALPHA


def test_sampler_is_reproducible_and_checks_its_mask_id():
    a = _sample(mlm_mask, seed=3, rows=10)
    b = _sample(mlm_mask, seed=3, rows=10)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match=r"mask_id must be a vocabulary index in \[0, 13\), found 13"):
        mlm_mask(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.bool), 13, V)


# --- models ---------------------------------------------------------------------------------------------
def block_count(d_e: int, M: int, d_f: int) -> int:
    """The catalogue's params.block (d_k = d_v = d_e / M): params.mha + params.ffn + 2 params.layer_norm."""
    d_k = d_v = d_e // M
    mha = 2 * M * d_e * (d_k + d_v) + M * (2 * d_k + d_v) + d_e
    return mha + (2 * d_f * d_e + d_e + d_f) + 2 * (2 * d_e)


def backbone_count(v: int, n: int, d_e: int, M: int, L: int, d_f: int) -> int:
    """The catalogue's params.bert_backbone."""
    return v * d_e + n * d_e + 2 * d_e + 2 * d_e + L * block_count(d_e, M, d_f) + d_e * d_e + d_e


def mlm_head_count(v: int, d_e: int) -> int:
    """The catalogue's params.mlm_head: transform, its layer norm, output bias (E is tied)."""
    return (d_e * d_e + d_e) + 2 * d_e + v


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_catalogue_at_tiny_sizes():
    model = BERTForPreTraining(v, n_max, d_e, M, L, d_f)
    # block: MHA 2·3·6·4 + 3·6 + 6 = 168, FFN 2·13·6 + 6 + 13 = 175, two LNs 24, so 367;
    # backbone: 11·6 + 7·6 + 12 + 12 + 2·367 + 36 + 6 = 908
    assert numel(model.bert) == backbone_count(v, n_max, d_e, M, L, d_f) == 908
    assert numel(model) == backbone_count(v, n_max, d_e, M, L, d_f) + mlm_head_count(v, d_e) + (2 * d_e + 2)
    assert model.spec_params()["E"] is model.bert.E  # the output layer is tied, counted once
    clf = BERTClassifier(4, v, n_max, d_e, M, L, d_f)
    assert numel(clf) == backbone_count(v, n_max, d_e, M, L, d_f) + 4 * d_e + 4
    for m in (model, clf, model.bert):
        assert sum(p.numel() for p in m.spec_params().values()) == numel(m)


def _catalogue(eq_id: str, **sizes: int) -> int:
    """A closed form of the params family, evaluated by its oracle."""
    eq = spec.get(eq_id)
    return int(Oracle(eq)({}, {a: sizes[a] for a in eq.axes})[eq.outputs[0].ascii])


@pytest.mark.parametrize(
    "sizes",
    [dict(v=11, n_max=7, d_e=6, M=3, L=2, d_f=13), dict(v=30522, n_max=512, d_e=768, M=12, L=12, d_f=3072)],
    ids=["tiny", "BERT-base"],
)
def test_parameter_counts_are_the_params_familys_closed_forms(sizes):
    with torch.device("meta"):
        model = BERTForPreTraining(**sizes)
    full = {**sizes, "d_k": sizes["d_e"] // sizes["M"], "d_v": sizes["d_e"] // sizes["M"]}
    assert numel(model.bert) == _catalogue("params.bert_backbone", **full)
    assert numel(model) - numel(model.bert) - (2 * sizes["d_e"] + 2) == _catalogue("params.mlm_head", **full)
    assert numel(model) - (2 * sizes["d_e"] + 2) == _catalogue("params.bert", **full)


def test_bert_base_counts_on_the_meta_device():
    with torch.device("meta"):
        model = BERTForPreTraining(30522, 512, 768, 12, 12, 3072)
    assert numel(model.bert) == 109_482_240  # the catalogue's BERT-base backbone
    assert numel(model) - 2 * 768 - 2 == 110_104_890  # + MLM head 622,650; the NSP head is 1,538 more


def test_models_reject_bad_sizes():
    with pytest.raises(ValueError, match="M must divide d_e, found v=5, n_max=4, d_e=6, M=4, L=1"):
        BERT(5, 4, 6, 4, 1)
    with pytest.raises(ValueError, match="n_c must be at least 2 classes, found 1"):
        BERTClassifier(1, 5, 4, 6, 3, 1)


def _inputs():
    torch.manual_seed(1)
    k = torch.randint(0, v, (B, n))
    s = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])
    keep = torch.tensor([[True] * 5, [True, True, True, False, False]])
    return k, s, keep


def _randomise(model: torch.nn.Module, std: float = 0.5) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model


def test_padded_tokens_do_not_change_the_outputs_at_real_tokens():
    model = _randomise(BERTForPreTraining(v, n_max, d_e, M, L, d_f))
    k, s, keep = _inputs()
    out = model(k, s, keep)
    k2 = torch.where(keep, k, (k + 1) % v)
    s2 = torch.where(keep, s, 1 - s)
    out2 = model(k2, s2, keep)
    torch.testing.assert_close(out2.Z[keep], out.Z[keep])
    torch.testing.assert_close(
        out2.states[keep.unsqueeze(1).expand(-1, L, -1)], out.states[keep.unsqueeze(1).expand(-1, L, -1)]
    )
    torch.testing.assert_close(out2.z_nsp, out.z_nsp)
    assert not torch.allclose(out2.Z[~keep], out.Z[~keep])  # the padded positions themselves do change


def test_full_forward_equals_the_spec_composition():
    """The model, step by step against the exact oracle of each equation (with BERT's ε variants)."""
    sizes = {"n": 3, "n_max": 4, "v": 5, "d_e": 4, "M": 2, "d_k": 2, "d_v": 2, "d_f": 3, "L": 2}
    model = _randomise(BERTForPreTraining(5, 4, 4, 2, 2, 3))
    k, s, keep = torch.tensor([[1, 4, 0]]), torch.tensor([[0, 1, 1]]), torch.tensor([[True, True, False]])
    out = model(k, s, keep)
    P = {name: p.detach().numpy() for name, p in model.spec_params().items()}
    eps = {"eps": np.array(model.bert.eps)}

    def oracle(eq_id, **arrays):
        eq = spec.get(eq_id)
        return Oracle(eq)(arrays, {a: sizes[a] for a in eq.axes})

    H0 = oracle("bert.input[eps]", k=k[0].numpy(), s=s[0].numpy(), **{x: P[x] for x in
                ("E", "Lambda", "G", "alpha_e", "beta_e")}, **eps)["H_0"]  # fmt: skip
    blocks = [d.ascii for d in spec.get("bert.encoder").params]
    H = oracle("bert.encoder[eps]", X=H0, keep=keep[0].double().numpy(), **{x: P[x] for x in blocks}, **eps)[
        "H"
    ]
    np.testing.assert_allclose(out.states[0].detach().numpy(), np.swapaxes(H, -1, -2), rtol=1e-10, atol=1e-12)
    heads = ("W_m", "b_m", "alpha_m", "beta_m", "E", "b_out")
    Y = oracle("bert.mlm_head[eps]", H=H[-1], **{x: P[x] for x in heads}, **eps)["Y_hat"]
    np.testing.assert_allclose(torch.softmax(out.Z[0], -1).detach().numpy(), Y.T, rtol=1e-10, atol=1e-12)
    p = oracle("bert.pooler", H=H[-1], W_p=P["W_p"], b_p=P["b_p"])["p"]
    np.testing.assert_allclose(out.p[0].detach().numpy(), p, rtol=1e-10, atol=1e-12)
    y = oracle("bert.nsp_head", p=p, W_nsp=P["W_nsp"], b_nsp=P["b_nsp"])["y_hat"]
    np.testing.assert_allclose(torch.softmax(out.z_nsp[0], -1).detach().numpy(), y, rtol=1e-10, atol=1e-12)


def test_classifier_module_loss_is_the_cross_entropy():
    model = _randomise(BERTClassifier(3, v, n_max, d_e, M, L, d_f))
    k, s, keep = _inputs()
    c = torch.tensor([2, 0])
    out = model(k, s, keep, c)
    assert model(k, s, keep).loss is None
    torch.testing.assert_close(out.y_hat.sum(-1), torch.ones(B))
    torch.testing.assert_close(out.loss, -torch.log(out.y_hat[torch.arange(B), c]))


# --- Hugging Face ---------------------------------------------------------------------------------------
def from_hugging_face(hf) -> BERTForPreTraining:
    """Our model with the weights of a Hugging Face BertForPreTraining (nn.Linear weights are out × in)."""
    c = hf.config
    d_e, M, L = c.hidden_size, c.num_attention_heads, c.num_hidden_layers
    d_k = d_e // M
    ours = BERTForPreTraining(c.vocab_size, c.max_position_embeddings, d_e, M, L, c.intermediate_size,
                              eps=c.layer_norm_eps)  # fmt: skip
    emb, b = hf.bert.embeddings, ours.bert

    def heads(linear):  # output feature m d_k + j of the d_e × d_e weight is column j of head m
        return linear.weight.T.reshape(d_e, M, d_k).transpose(0, 1), linear.bias.reshape(M, d_k)

    with torch.no_grad():
        b.E.copy_(emb.word_embeddings.weight.T)
        b.Lambda.copy_(emb.position_embeddings.weight.T)
        b.G.copy_(emb.token_type_embeddings.weight.T)
        b.alpha_e.copy_(emb.LayerNorm.weight), b.beta_e.copy_(emb.LayerNorm.bias)
        for l, layer in enumerate(hf.bert.encoder.layer):
            att = layer.attention
            for name, linear in (("Q", att.self.query), ("K", att.self.key), ("V", att.self.value)):
                W, bias = heads(linear)
                getattr(b, f"W_{name}")[l].copy_(W), getattr(b, f"b_{name}")[l].copy_(bias)
            b.W_O[l].copy_(att.output.dense.weight.T), b.b_O[l].copy_(att.output.dense.bias)
            b.alpha_1[l].copy_(att.output.LayerNorm.weight), b.beta_1[l].copy_(att.output.LayerNorm.bias)
            b.W_1[l].copy_(layer.intermediate.dense.weight), b.b_1[l].copy_(layer.intermediate.dense.bias)
            b.W_2[l].copy_(layer.output.dense.weight), b.b_2[l].copy_(layer.output.dense.bias)
            b.alpha_2[l].copy_(layer.output.LayerNorm.weight), b.beta_2[l].copy_(layer.output.LayerNorm.bias)
        b.W_p.copy_(hf.bert.pooler.dense.weight), b.b_p.copy_(hf.bert.pooler.dense.bias)
        t = hf.cls.predictions.transform
        ours.W_m.copy_(t.dense.weight), ours.b_m.copy_(t.dense.bias)
        ours.alpha_m.copy_(t.LayerNorm.weight), ours.beta_m.copy_(t.LayerNorm.bias)
        ours.b_out.copy_(hf.cls.predictions.bias)
        ours.W_nsp.copy_(hf.cls.seq_relationship.weight), ours.b_nsp.copy_(hf.cls.seq_relationship.bias)
    return ours


def test_agrees_with_hugging_face_bert_for_pretraining():
    import transformers  # the [dev] extra installs it: no download, random weights

    config = transformers.BertConfig(
        vocab_size=13, hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=20,
        max_position_embeddings=16, type_vocab_size=2, attn_implementation="eager",
    )  # fmt: skip
    assert (config.hidden_act, config.layer_norm_eps) == ("gelu", 1e-12)  # erf GELU, BERT's ε
    torch.manual_seed(0)
    hf = transformers.BertForPreTraining(config).to(torch.float64).eval()
    with torch.no_grad():
        for p in hf.parameters():  # random weights of order 1, so that every step matters
            p.normal_(0.0, 0.5)
    ours = from_hugging_face(hf).eval()
    assert numel(ours) == numel(hf)  # the tied decoder weight is counted once by both
    k = torch.randint(0, 13, (3, 9))
    s = (torch.arange(9) >= 4).long().expand(3, 9)
    keep = torch.ones(3, 9, dtype=torch.bool)
    keep[1, 6:], keep[2, 2:] = False, False
    with torch.no_grad():
        want = hf(input_ids=k, token_type_ids=s, attention_mask=keep.long(), output_hidden_states=True)
        got = ours(k, s, keep)
        pooled = hf.bert(input_ids=k, token_type_ids=s, attention_mask=keep.long()).pooler_output
    P = ours.spec_params()
    H0 = embed(k, s, P["E"], P["Lambda"], P["G"], P["alpha_e"], P["beta_e"], eps=ours.bert.eps)
    torch.testing.assert_close(H0, want.hidden_states[0], rtol=1e-12, atol=1e-12)
    for l in range(2):
        torch.testing.assert_close(got.states[:, l], want.hidden_states[l + 1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.Z, want.prediction_logits, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.z_nsp, want.seq_relationship_logits, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.p, pooled, rtol=1e-12, atol=1e-12)


# --- runtime checks, registry, the verifier -------------------------------------------------------------
def _wrapped(fn, like):
    """``fn`` with the signature and annotations of ``like`` (what the verifier binds by)."""
    fn.__signature__ = __import__("inspect").signature(like)
    fn.__annotations__ = like.__annotations__
    return fn


def _mlm_head_gelu_tanh(H, W_m, b_m, alpha_m, beta_m, E, b_out):
    return mlm_head(H, W_m, b_m, alpha_m, beta_m, E, b_out, activation="gelu_tanh")


@pytest.mark.parametrize(
    ("variant", "fn"),
    [("bert.input[eps]", None), ("bert.mlm_head[eps]", None),
     ("bert.mlm_head[gelu_tanh]", _wrapped(_mlm_head_gelu_tanh, mlm_head))],
)  # fmt: skip
def test_the_implementation_meets_the_variants(variant, fn):
    # ε is bound to the functions' ``eps``; the activation is chosen by name
    eq = spec.get(variant)
    target = ImplTarget(eq, fn) if fn is not None else ImplTarget(eq)
    checks = [c for c in checks_for(eq, PROFILES["quick"], 0, target) if c.name.startswith("impl=")]
    assert all(run_check(c, PROFILES["quick"], 0).passed for c in checks)


def test_runtime_checks_reject_wrong_shapes():
    H = torch.randn(B, n, d_e)
    with pytest.raises(TypeCheckError, match="W_p"):
        pooler(H, torch.randn(d_e, d_e + 1), torch.randn(d_e))
    with pytest.raises(TypeCheckError, match="W_nsp"):
        nsp_head(torch.randn(B, d_e), torch.randn(3, d_e), torch.randn(3))
    model = BERT(v, n_max, d_e, M, L, d_f)
    P = model.spec_params()
    blocks = {x: P[x] for x in ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O", "alpha_1", "beta_1",
                                "W_1", "b_1", "W_2", "b_2", "alpha_2", "beta_2")}  # fmt: skip
    blocks["W_1"] = blocks["W_1"][:1]  # one layer fewer than the others
    with pytest.raises(TypeCheckError, match="W_1"):
        encoder(H, torch.ones(B, n, dtype=torch.bool), **blocks)


def test_registry():
    assert impl.implementation("bert.encoder") is encoder
    assert impl.implementation("bert.mlm_masking") is mlm_masking
    assert {f"bert.{x}" for x in ("input", "encoder", "mlm_head", "mlm_masking", "mlm_loss", "pooler",
                                  "nsp_head", "classifier")} <= set(impl.implementations())  # fmt: skip


def _mean_pooler(H, W_p, b_p):
    """A plausible bug: mean pooling over all tokens instead of the [CLS] state."""
    return torch.tanh(H.mean(dim=-2) @ W_p.T + b_p)


def _encoder_without_padding_mask(X, keep, **params):
    """A plausible bug: the padding mask is dropped (every key is attended)."""
    return encoder(X, torch.ones_like(keep), **params)


def _masking_special_too(k, special, mask_id, v, *, dtype=torch.float32):
    """A plausible bug: special tokens are masked like any other."""
    return mlm_masking(k, torch.zeros_like(special), mask_id, v, dtype=dtype)


WRONG = [
    ("mean pooling", "bert.pooler", _wrapped(_mean_pooler, pooler),
     {"impl=generated", "property:first_token_only"}),
    ("no padding mask", "bert.encoder", _wrapped(_encoder_without_padding_mask, encoder),
     {"impl=generated", "property:padding_invariance"}),
    ("special tokens masked", "bert.mlm_masking", _wrapped(_masking_special_too, mlm_masking),
     {"impl=oracle", "impl=generated", "property:mlm_masking_rates"}),
]  # fmt: skip


@pytest.mark.parametrize(("bug", "eq_id", "fn", "catchers"), WRONG, ids=[w[0] for w in WRONG])
def test_wrong_implementation_fails_naming_the_check(bug, eq_id, fn, catchers):
    eq = spec.get(eq_id)
    target = ImplTarget(eq, fn, name=f"wrong[{bug}]")
    checks = [c for c in checks_for(eq, PROFILES["quick"], 0, target) if c.name in catchers]
    failed = {c.name for c in checks if not run_check(c, PROFILES["quick"], 0).passed}
    assert catchers <= failed, f"{bug}: expected {sorted(catchers)} to fail, failed {sorted(failed)}"


def test_the_family_passes_the_verifier():
    results = verify(spec.select(["bert"]), "quick", seed=0)
    failures = [f"{r.equation} {r.check}: {r.message}" for r in results if not r.passed]
    assert not failures
    assert len(results) == 43  # 36, and the fast paths of bert.input (3 checks) and bert.encoder (4)
    fast = {(r.equation, r.check) for r in results if r.target == "impl[fast]"}
    assert fast == {
        ("bert.input", "impl[fast]=oracle"), ("bert.input", "impl[fast]=generated"),
        ("bert.input", "property[fast]:columns_standardised"),
        ("bert.encoder", "impl[fast]=oracle"), ("bert.encoder", "impl[fast]=generated"),
        ("bert.encoder", "property[fast]:padding_invariance"),
        ("bert.encoder", "property[fast]:permutation_equivariance"),
    }  # fmt: skip
