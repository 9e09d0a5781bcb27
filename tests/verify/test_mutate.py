"""lmspec mutate: each operator's mutation on a snippet (the expected text is written from the operator's
definition),
sites in impl/, the equivalence list, the CLI, and a few real mutants run end to end through lmspec verify."""

import json
import textwrap

import pytest

from lmspec.verify.cli import app as cli
from lmspec.verify.mutate.equivalent import EQUIVALENT, reason_for
from lmspec.verify.mutate.operators import OPERATORS, discover, mutants_of, operator, sites
from lmspec.verify.mutate.reach import equations_reaching, families_for, impl_dir, module_sources, reachable
from lmspec.verify.mutate.run import run_mutant


def mutated(name: str, snippet: str, file: str = "snippet.py") -> list[str]:
    """The mutated sources of ``snippet`` under one operator, in the order it yields them."""
    source = textwrap.dedent(snippet)
    return [m.apply(source) for m in mutants_of(file, source, [operator(name)])]


def src(text: str) -> str:
    return textwrap.dedent(text)


# --- each operator on a snippet --------------------------------------------------------------------


def test_softmax_axis_moves_the_softmax_to_the_previous_axis():
    got = mutated("softmax-axis", "def f(x):\n    return torch.softmax(x, dim=-1) + x.log_softmax(dim=-1)\n")
    assert got == [
        "def f(x):\n    return torch.softmax(x, dim=-2) + x.log_softmax(dim=-1)\n",
        "def f(x):\n    return torch.softmax(x, dim=-1) + x.log_softmax(dim=-2)\n",
    ]


def test_transpose_drop_removes_transpose_T_and_mT():
    got = mutated("transpose-drop", "def f(a, b, c, d):\n    return a @ b.transpose(-2, -1) + c.T + d.mT\n")
    assert got == [
        "def f(a, b, c, d):\n    return a @ b + c.T + d.mT\n",
        "def f(a, b, c, d):\n    return a @ b.transpose(-2, -1) + c + d.mT\n",
        "def f(a, b, c, d):\n    return a @ b.transpose(-2, -1) + c.T + d\n",
    ]


def test_transpose_add_transposes_the_right_factor_unless_it_is_one():
    got = mutated("transpose-add", "def f(a, b, c):\n    return (a @ b) @ c.T\n")
    assert got == ["def f(a, b, c):\n    return (a @ b.transpose(-2, -1)) @ c.T\n"]


def test_scale_sqrt_d_e_none_and_inverted():
    snippet = src(
        """\
        def f(Q: Float[Tensor, "n d_k"], K, H: Float[Tensor, "*batch n d_e"]):
            return Q @ K.mT / math.sqrt(Q.shape[-1])
        """
    )
    head = 'def f(Q: Float[Tensor, "n d_k"], K, H: Float[Tensor, "*batch n d_e"]):\n'
    assert mutated("scale", snippet) == [
        head + "    return Q @ K.mT / math.sqrt(H.shape[-1])\n",
        head + "    return Q @ K.mT\n",
        head + "    return Q @ K.mT * math.sqrt(Q.shape[-1])\n",
    ]


def test_scale_without_a_d_e_in_scope_has_no_sqrt_d_e_mutant():
    got = mutated("scale", "def f(Q, K):\n    return Q @ K.mT / math.sqrt(4)\n")
    assert got == [
        "def f(Q, K):\n    return Q @ K.mT\n",
        "def f(Q, K):\n    return Q @ K.mT * math.sqrt(4)\n",
    ]


def test_causal_diagonal_plus_and_minus_one():
    got = mutated(
        "causal-diagonal", "def f(n, m):\n    return x.triu(diagonal=1), x.tril(diagonal=m - n + 1)\n"
    )
    assert got == [
        "def f(n, m):\n    return x.triu(diagonal=2), x.tril(diagonal=m - n + 1)\n",
        "def f(n, m):\n    return x.triu(diagonal=0), x.tril(diagonal=m - n + 1)\n",
        "def f(n, m):\n    return x.triu(diagonal=1), x.tril(diagonal=m - n + 2)\n",
        "def f(n, m):\n    return x.triu(diagonal=1), x.tril(diagonal=m - n)\n",
    ]


def test_mask_polarity_drops_invert_negates_condition_and_swaps_where():
    snippet = src(
        """\
        def f(s, keep, m, a, b):
            s = s.masked_fill(~keep, 0.0)
            t = s.masked_fill(s < m, 1.0)
            return torch.where(m, a, b)
        """
    )
    got = mutated("mask-polarity", snippet)
    assert got == [
        snippet.replace("masked_fill(~keep,", "masked_fill(keep,"),
        snippet.replace("masked_fill(s < m,", "masked_fill(~(s < m),"),
        snippet.replace("torch.where(m, a, b)", "torch.where(m, b, a)"),
    ]


def test_fill_value_replaces_every_spelling_of_minus_infinity():
    snippet = src(
        """\
        def f(s, m):
            return s.masked_fill(m, -math.inf), float("-inf"), torch.finfo(s.dtype).min, -torch.inf
        """
    )
    got = mutated("fill-value", snippet)
    assert got == [
        snippet.replace("-math.inf", "-1e4"),
        snippet.replace('float("-inf")', "-1e4"),
        snippet.replace("torch.finfo(s.dtype).min", "-1e4"),
        snippet.replace("-torch.inf", "-1e4"),
    ]


def test_norm_axis_moves_the_statistics_to_the_token_axis_in_norm_functions_only():
    snippet = "def layer_norm(h):\n    return h.mean(dim=-1, keepdim=True)\n\n"
    snippet += "def f(h):\n    return h.mean(dim=-1)\n"
    assert mutated("norm-axis", snippet) == [
        snippet.replace("mean(dim=-1, keepdim=True)", "mean(dim=-2, keepdim=True)")
    ]


def test_bessel_divides_by_d_minus_one_and_flips_unbiased():
    snippet = src(
        """\
        def norm(h, mu):
            var = ((h - mu) ** 2).mean(dim=-1, keepdim=True)
            return var, h.var(dim=-1, unbiased=False)
        """
    )
    assert mutated("bessel", snippet) == [
        snippet.replace(
            "((h - mu) ** 2).mean(dim=-1, keepdim=True)",
            "((h - mu) ** 2).sum(dim=-1, keepdim=True) / ((h - mu).shape[-1] - 1)",
        ),
        snippet.replace("unbiased=False", "unbiased=True"),
    ]


def test_epsilon_moved_across_the_root_or_dropped():
    snippet = "def f(h, var, m, s, eps):\n    return h / torch.sqrt(var + eps), m / (s.sqrt() + eps)\n"
    assert mutated("epsilon", snippet) == [
        snippet.replace("torch.sqrt(var + eps)", "(torch.sqrt(var) + eps)"),
        snippet.replace("torch.sqrt(var + eps)", "torch.sqrt(var)"),
        snippet.replace("(s.sqrt() + eps)", "((s + eps).sqrt())"),
        snippet.replace("(s.sqrt() + eps)", "(s.sqrt())"),
    ]


def test_gelu_form_erf_to_tanh_and_back():
    exact = "def g(x):\n    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))\n"
    tanh = "def g(x):\n    return 0.5 * x * (1.0 + torch.tanh(C * (x + 0.044715 * x**3)))\n"
    assert mutated("gelu-form", exact) == [
        "def g(x):\n    return 0.5 * x * (1.0 + "
        "torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))\n"
    ]
    assert mutated("gelu-form", tanh) == [
        "def g(x):\n    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))\n"
    ]


PRE_LN = src(
    """\
    def block(H, a, b):
        H_hat = layer_norm(H, a, b)
        X = H + attn(H_hat)
        return X
    """
)


def test_residual_source_takes_the_residual_from_the_normed_input():
    assert mutated("residual-source", PRE_LN) == [PRE_LN.replace("X = H + attn", "X = H_hat + attn")]


def test_ln_placement_pre_to_post_and_post_to_pre():
    assert mutated("ln-placement", PRE_LN) == [
        PRE_LN.replace("X = H + attn(H_hat)", "X = layer_norm(H + attn(H), a, b)")
    ]
    post = "def block(H, a, b):\n    return layer_norm(H + attn(H), a, b)\n"
    assert mutated("ln-placement", post) == [
        "def block(H, a, b):\n    return H + attn(layer_norm(H, a, b))\n"
    ]


def test_label_shift_moves_loss_slices_and_shift_arguments():
    snippet = "def nll(logY, k):\n    return logY[..., :-1, :].gather(-1, k[..., 1:]), out(k, shift=1)\n"
    assert mutated("label-shift", snippet) == [
        snippet.replace("[..., :-1, :]", "[..., :0, :]"),
        snippet.replace("[..., :-1, :]", "[..., :-2, :]"),
        snippet.replace("k[..., 1:]", "k[..., 2:]"),
        snippet.replace("k[..., 1:]", "k[..., 0:]"),
        snippet.replace("shift=1", "shift=2"),
        snippet.replace("shift=1", "shift=0"),
    ]


def test_padding_counted_drops_the_mask_from_the_sum_and_the_count():
    snippet = "def loss(ell, keep):\n    return torch.where(keep, ell, 0.0).sum(-1) / keep.sum(-1)\n"
    assert mutated("padding-counted", snippet) == [
        snippet.replace("torch.where(keep, ell, 0.0).sum(-1)", "ell.sum(-1)"),
        snippet.replace("/ keep.sum(-1)", "/ torch.ones_like(keep).sum(-1)"),
    ]


def test_gate_product_becomes_a_sum_in_recurrent_modules_only():
    snippet = "def cell(f_t, i_t, c_prev, c_tilde):\n    return f_t * c_prev + i_t * c_tilde\n"
    assert mutated("gate-product", snippet, "lstm.py") == [
        snippet.replace("f_t * c_prev", "(f_t + c_prev)"),
        snippet.replace("i_t * c_tilde", "(i_t + c_tilde)"),
    ]
    assert mutated("gate-product", snippet, "attention.py") == []


def test_sin_cos_swaps_each_function():
    snippet = "def pe(even, a):\n    return torch.where(even, torch.sin(a), torch.cos(a))\n"
    assert mutated("sin-cos", snippet) == [
        "def pe(even, a):\n    return torch.where(even, torch.cos(a), torch.cos(a))\n",
        "def pe(even, a):\n    return torch.where(even, torch.sin(a), torch.sin(a))\n",
    ]


def test_slice_off_by_one_moves_each_bound_but_not_shapes():
    snippet = "def f(L, n, x):\n    return L[:, :n], x.shape[:-1]\n"
    assert mutated("slice-off-by-one", snippet) == [
        snippet.replace("L[:, :n]", "L[:, :n + 1]"),
        snippet.replace("L[:, :n]", "L[:, :n - 1]"),
    ]


def test_a_mutant_changes_only_its_segment():
    source = 'def f(x):\n    s = "∑ü"; y = torch.softmax(x, dim=-1)  # rows sum to 1\n    return y\n'
    (m,) = mutants_of("s.py", source, [operator("softmax-axis")])  # columns are byte offsets: ∑ü before
    assert m.apply(source) == source.replace("dim=-1", "dim=-2")
    changed = [line for line in m.diff(source).splitlines()[2:] if line[:1] in "+-"]
    assert changed == [
        '-    s = "∑ü"; y = torch.softmax(x, dim=-1)  # rows sum to 1',
        '+    s = "∑ü"; y = torch.softmax(x, dim=-2)  # rows sum to 1',
    ]


# --- impl/ -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def impl_mutants():
    return discover()


def test_every_operator_finds_a_site_in_impl(impl_mutants):
    counts = sites(impl_mutants)
    for op in OPERATORS:
        assert counts[op.name] >= 1 or op.no_site_reason, op.name


def test_every_mutant_of_impl_parses_and_differs(impl_mutants):
    sources = module_sources(impl_dir())
    ids = [m.id for m in impl_mutants]
    assert len(ids) == len(set(ids))
    for m in impl_mutants:
        text = m.apply(sources[m.module])
        compile(text, m.file, "exec")
        assert text != sources[m.module]


def test_only_code_the_verifier_reaches_is_mutated(impl_mutants):
    reached = reachable(module_sources(impl_dir()))
    assert "_softmax_rows" in reached["attention"] and "_gelu" in reached["activation"]
    assert "mlm_mask" not in reached["bert"] and "step_reset_after" not in reached["gru"]
    assert not any(m.function in ("mlm_mask", "generate", "step_reset_after") for m in impl_mutants)


def test_families_of_a_module_are_its_own_then_its_importers():
    sources = module_sources(impl_dir())
    assert families_for("attention", sources) == [
        "attention",
        "transformer",
        "gpt2",
        "bert",
        "vit",
        "timeseries",
    ]
    assert families_for("positional", sources) == ["positional"]


def test_equivalent_entries_match_a_mutant_whatever_its_line(impl_mutants):
    for entry in EQUIVALENT:
        assert any(reason_for(m) == entry.reason for m in impl_mutants), entry
    sources = module_sources(impl_dir())
    shifted = dict(sources, vit="# a comment\n\n" + sources["vit"])
    moved = discover(["vit.py"], sources=shifted)
    listed = [m for m in moved if reason_for(m)]
    assert listed and all(m.line > 2 for m in listed)


# --- the CLI ---------------------------------------------------------------------------------------


def run(capsys, *args):
    code = cli.main(["mutate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "args, sentence",
    [
        (["--operator", "nope"], "unknown operator 'nope'; choose from softmax-axis"),
        (["README.md"], "is not inside impl/"),
        (["--jobs", "0"], "--jobs must be a positive integer, found 0"),
        (["--limit", "0"], "--limit must be a positive integer, found 0"),
        (["--profile", "fast"], "unknown profile 'fast'"),
        (["--mutant", "attention/nope/1"], "no mutant 'attention/nope/1' in this selection"),
    ],
)
def test_user_errors_exit_2_with_one_sentence(capsys, args, sentence):
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.startswith("lmspec: error: ") and sentence in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_path_that_is_not_a_module_of_impl_exits_2(capsys):
    code, _, err = run(capsys, str(impl_dir() / "nothing.py"))
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, str(impl_dir() / "__init__.txt"))
    assert code == 2 and "is not a .py file of impl/" in err


def test_list_prints_the_mutants_without_running_them(capsys):
    code, out, _ = run(capsys, str(impl_dir() / "attention.py"), "--list", "--operator", "scale")
    assert code == 0
    assert "attention/scale/1" in out and "attention/scale/5" in out and "_heads" in out
    assert "5 mutants; per operator (mutants/sites): scale 5/2" in out


# --- end to end (real mutants through lmspec verify, quick profile) -------------------------------


def test_softmax_axis_mutant_of_attention_is_killed_by_a_named_check(capsys, tmp_path):
    report = tmp_path / "m.json"
    path = str(impl_dir() / "attention.py")
    code, out, _ = run(
        capsys, path, "--operator", "softmax-axis", "--profile", "quick", "--json", str(report)
    )
    assert code == 0
    assert "kill rate 1/1 = 100.0%" in out
    (m,) = json.loads(report.read_text())["mutants"]
    assert m["id"] == "attention/softmax-axis/1" and m["status"] == "killed"
    assert m["killed_by"] == "attention.softmax_rows impl=oracle"


def test_an_equivalent_mutant_survives_and_is_reported_as_equivalent(capsys):
    (m,) = [m for m in discover(["vit.py"]) if reason_for(m)]
    code, out, _ = run(capsys, str(impl_dir() / "vit.py"), "--mutant", m.id, "--profile", "quick")
    assert code == 0  # an equivalent survivor does not fail the run
    assert f"SURVIVED {m.id} (impl/vit.py:{m.line}, head)" in out
    assert "equivalent: H[..., 0:2, :] instead of H[..., 0:1, :]" in out
    assert "+    h = layer_norm(H[..., 0:2, :], alpha_e, beta_e, eps)[..., 0, :]" in out
    assert "kill rate 0/0 = 100.0%" in out and "1 equivalent, 0 not caught" in out


def test_the_subprocess_runner_gives_the_same_outcome():
    sources = module_sources(impl_dir())
    (m,) = [m for m in discover(["norm.py"], [operator("norm-axis")], sources=sources)][:1]
    outcome = run_mutant(m, sources, profile="quick")
    assert outcome.status == "killed" and outcome.killed_by.startswith("norm.layer_norm ")
    assert outcome.families[0] == "norm"


def test_json_report_is_byte_identical_for_a_seed(capsys, tmp_path):
    texts = []
    for name in ("a.json", "b.json"):
        args = [str(impl_dir() / "norm.py"), "--operator", "norm-axis", "--limit", "1", "--profile", "quick"]
        code, _, _ = run(capsys, *args, "--json", str(tmp_path / name))
        assert code == 0
        texts.append((tmp_path / name).read_bytes())
    assert texts[0] == texts[1]
    doc = json.loads(texts[0])
    assert doc["summary"]["mutants"] == 1 and doc["mutants"][0]["status"] == "killed"


def test_equations_reaching_a_helper_start_with_its_own_family():
    sources = module_sources(impl_dir())
    eqs = equations_reaching("attention", "_heads", sources)
    assert eqs[:2] == ["attention.multi_head", "attention.cross"]
    assert "transformer.block_pre_ln" in eqs and "attention.scaled_dot_product" not in eqs
    assert equations_reaching("gpt2", "_attention", sources) == ["gpt2.forward"]


# --- a check added for a survivor: gpt2's causal mask filled with −10⁴ --------------------------------


def _run_property(eq_id: str, prop: str, options: dict):
    """Run one property of an equation on impl/, declared here if the spec does not declare it (yet)."""
    import copy

    from lmspec import spec
    from lmspec.spec.equation import Invariant
    from lmspec.verify.runner import PROFILES, checks_for, run_check

    eq = copy.copy(spec.get(eq_id))
    if prop not in [inv.name for inv in eq.invariants]:
        eq.invariants = (*eq.invariants, Invariant(prop, options))
    (check,) = [c for c in checks_for(eq, PROFILES["default"], 0) if c.name == f"property:{prop}"]
    return run_check(check, PROFILES["default"], 0)


LARGE = {"tokens": "k", "output": "H_out", "scale": ("W_Q", "W_K")}


def test_causal_large_scores_holds_for_impl_gpt2():
    result = _run_property("gpt2.forward", "causal_large_scores", LARGE)
    assert result.passed, result.message


def test_causal_large_scores_catches_a_minus_1e4_fill(monkeypatch):
    """The survivor gpt2/fill-value/1 (``-math.inf`` → ``-1e4`` in gpt2._attention): causal_tokens passes,
    since the drawn scores stay far below 10⁴, but with scaled-up queries and keys a future token leaks."""
    import math
    import types

    from lmspec.impl import gpt2

    monkeypatch.setattr(gpt2, "math", types.SimpleNamespace(inf=1e4, sqrt=math.sqrt))
    assert _run_property("gpt2.forward", "causal_tokens", LARGE).passed
    result = _run_property("gpt2.forward", "causal_large_scores", LARGE)
    assert not result.passed
    assert "violates causal_large_scores: changing the tokens after position" in result.message
