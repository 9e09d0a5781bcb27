"""`lmspec params`: the formula, the terms and the number; presets and --set; exit 2 on bad input.

Totals: CATALOGUE.md's test vectors (GPT-2 small, BERT-base, MHA); the larger presets agree with Hugging
Face's counts (tests/impl/test_params.py).
"""

import json

import pytest

from lmspec.verify.cli import main


def out_of(capsys, *args) -> tuple[int, str, str]:
    code = main(["params", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_gpt2_small_prints_formula_terms_and_total(capsys):
    code, out, err = out_of(capsys, "gpt2")
    assert code == 0 and not err
    assert "GPT-2 small — params.gpt2" in out
    assert (
        "N = L (2 M d_e (d_k + d_v) + M (2 d_k + d_v) + 2 d_e d_f + 6 d_e + d_f) + d_e (n_max + v + 2)" in out
    )
    assert r"LaTeX: N_{\mathrm{GPT2}} = L \left(2 M d_{e}" in out
    assert "sizes: n_max=1024, v=50257, d_e=768, M=12, d_k=64, d_v=64, d_f=3072, L=12" in out
    for term, value in (
        ("token embedding E", "38,597,376"),
        ("positions Λ", "786,432"),
        ("L pre-LN blocks", "85,054,464"),
        ("final layer norm", "1,536"),
    ):
        line = next(line for line in out.splitlines() if term in line)
        assert value in line
    assert "N = 124,439,808 (124.4 M)" in out


@pytest.mark.parametrize(
    ("model", "total"),
    [
        ("gpt2", 124_439_808),
        ("gpt2-medium", 354_823_168),
        ("gpt2-large", 774_030_080),
        ("gpt2-xl", 1_557_611_200),
        ("bert-base", 110_104_890),
        ("bert-large", 336_224_058),
        ("vit-base", 86_567_656),
        ("vit-large", 304_326_632),
    ],
)
def test_presets_json(capsys, model, total):
    code, out, _ = out_of(capsys, model, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["model"] == model and doc["total"] == total
    assert sum(t["value"] for t in doc["terms"]) == total
    assert set(doc) == {"model", "title", "count", "sizes", "formula", "latex", "terms", "total"}


def test_bert_base_json_splits_backbone_and_head(capsys):
    _, out, _ = out_of(capsys, "bert-base", "--json")
    doc = json.loads(out)
    assert doc["count"] == "params.bert"
    assert [(t["term"], t["value"], t["part"]) for t in doc["terms"]] == [
        ("BERT backbone", 109_482_240, "params.bert_backbone"),
        ("MLM head", 622_650, "params.mlm_head"),
    ]
    assert doc["formula"].endswith("+ 2 d_e² + d_e (n_max + v + 8) + v")


def test_set_changes_a_presets_sizes(capsys):
    _, out, _ = out_of(capsys, "gpt2", "--set", "L=24", "--set", "n_max=2048", "--json")
    doc = json.loads(out)
    assert doc["sizes"]["L"] == 24 and doc["sizes"]["n_max"] == 2048
    assert doc["total"] == 124_439_808 + 12 * 7_087_872 + 1024 * 768


def test_a_part_with_sizes_from_set(capsys):
    code, out, _ = out_of(capsys, "mha", "-s", "d_e=512", "-s", "M=8", "-s", "d_k=64", "-s", "d_v=64")
    assert code == 0
    assert "Parameters of multi-head attention — params.mha" in out
    assert "N = 2 M d_e (d_k + d_v) + M (2 d_k + d_v) + d_e" in out
    line = next(line for line in out.splitlines() if "b_O" in line)
    assert "d_e" in line and "512" in line
    assert "N = 1,050,624 (1.1 M)" in out


def test_parts_by_id_and_variant(capsys):
    sizes = ["--set", "d_e=512", "--set", "M=8", "--set", "d_k=64", "--set", "d_v=64", "--json"]
    _, out, _ = out_of(capsys, "params.mha[no_bias]", *sizes)
    doc = json.loads(out)
    assert doc["count"] == "params.mha[no_bias]" and doc["total"] == 1_048_576
    assert doc["formula"] == "2 M d_e (d_k + d_v)"
    code, out, _ = out_of(capsys, "block", "--set", "d_e=128", "--set", "M=8", "--set", "d_k=16",
                          "--set", "d_v=16", "--set", "d_f=2048", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["total"] == 593_024
    _, out, _ = out_of(capsys, "embedding", "--set", "v=5000", "--set", "d_e=128", "--json")
    _, out2, _ = out_of(capsys, "positional", "--set", "n_max=50", "--set", "d_e=128", "--json")
    assert json.loads(out)["total"] + json.loads(out2)["total"] == 646_400


def test_the_bias_switch_zeta(capsys):
    """The tutorial's ζ: --set zeta=0 counts multi-head attention without its biases, as params.mha[no_bias]
    does; zeta=1 is the count as given."""
    sizes = ["--set", "d_e=768", "--set", "M=12", "--set", "d_k=64", "--set", "d_v=64", "--json"]
    _, off, _ = out_of(capsys, "mha", "--set", "zeta=0", *sizes)
    _, on, _ = out_of(capsys, "mha", "--set", "ζ=1", *sizes)
    off, on = json.loads(off), json.loads(on)
    assert off["count"] == "params.mha[no_bias]" and off["total"] == 2 * 12 * 768 * (64 + 64)
    assert on["count"] == "params.mha" and on["total"] - off["total"] == 12 * (2 * 64 + 64) + 768


def test_vit_terms_and_patches(capsys):
    code, out, _ = out_of(capsys, "vit-base")
    assert code == 0
    assert "ViT-B/16 classifier — vit" in out
    assert "H_i W_i/P²" in out  # N = HW/P² patches
    line = next(line for line in out.splitlines() if "positions" in line)
    assert "151,296" in line  # (196 + 1) · 768
    assert "N = 86,567,656 (86.6 M)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gpt3"], "lmspec: error: unknown model 'gpt3': choose a preset (gpt2, gpt2-medium, "),
        (["gpt2", "--set", "d_e"], "lmspec: error: malformed --set 'd_e': expected AXIS=SIZE with a positive "
         "integer, e.g. d_e=768"),
        (["gpt2", "--set", "d_e=big"], "lmspec: error: malformed --set 'd_e=big'"),
        (["gpt2", "--set", "d_e=0"], "lmspec: error: --set 'd_e=0': sizes are positive integers"),
        (["mha", "--set", "d_z=3"], "lmspec: error: unknown axis 'd_z' in --set 'd_z=3': the axes of "
         "params.mha are d_e, M, d_k, d_v"),
        (["mha", "--set", "v=3"], "lmspec: error: params.mha has no axis 'v' (its axes are d_e, M, d_k, "
         "d_v)"),
        (["mha", "--set", "d_e=8", "--set", "M=2"], "lmspec: error: params.mha needs a size for d_k, d_v "
         "(--set d_k=… --set d_v=…)"),
        (["vit-base", "--set", "H_i=225"], "lmspec: error: the image side H_i=225 is not a multiple of the "
         "patch size P=16"),
        (["params.nope"], "lmspec: error: unknown model 'params.nope'"),
        (["mha", "--set", "zeta=2"], "lmspec: error: --set 'zeta=2': ζ switches the biases, 0 (none) or 1 "
         "(all)"),
        (["gpt2", "--set", "zeta=0"], "lmspec: error: ζ = 0 (no biases) is a form of mha in the tutorial's "
         "formulas; gpt2 counts its biases as its model has them"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_sentence(capsys, args, message):
    code, out, err = out_of(capsys, *args)
    assert code == 2
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out


def test_missing_model_is_a_usage_error(capsys):
    code, _, err = out_of(capsys)
    assert code == 2
    assert err == "lmspec: error: Missing argument 'model'.\n"


def test_help_lists_the_command(capsys):
    assert main(["--help"]) == 0
    assert "params" in capsys.readouterr().out
