"""`lmspec audit`: exit codes, one-sentence errors, reports, the README walkthrough."""

import json
import re
import textwrap
from pathlib import Path

import pytest

from lmspec.verify.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
LAYOUT = "q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v"

GOOD = """
import math
import torch

def attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v

def unscaled(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1)).masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v

def broken(q, k, v, mask):
    raise ValueError("not implemented yet")

def opaque(a, b, c, d):
    return a

NOT_CALLABLE = 3
"""


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "attn.py"
    path.write_text(textwrap.dedent(GOOD))
    return path


def run(capsys, *args):
    code = main(["audit", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_correct_function_passes_with_exit_0_and_writes_every_report(user_file, tmp_path, capsys):
    paths = {k: tmp_path / f"report.{k}" for k in ("json", "xml", "html")}
    code, out, err = run(
        capsys,
        f"{user_file}:attention",
        "--as",
        "attention.scaled_dot_product",
        "--layout",
        LAYOUT,
        "--mask",
        "bool_keep",
        "--profile",
        "quick",
        "--json",
        str(paths["json"]),
        "--junit",
        str(paths["xml"]),
        "--html",
        str(paths["html"]),
    )
    assert code == 0, out + err
    assert ": pass" in out and "value=oracle" in out and "gradient" in out
    doc = json.loads(paths["json"].read_text())
    assert doc["reports"][0]["verdict"] == "pass"
    assert "<testsuites" in paths["xml"].read_text()
    html = paths["html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html


def test_a_variant_exits_1_and_names_the_variant(user_file, capsys):
    code, out, _ = run(
        capsys,
        f"{user_file}:unscaled",
        "--as",
        "attention.scaled_dot_product",
        "--layout",
        LAYOUT,
        "--mask",
        "bool_keep",
        "--profile",
        "quick",
    )
    assert code == 1
    assert ": variant" in out and "unscaled — matches" in out
    assert "--as attention.scaled_dot_product[unscaled]" in out


def test_a_target_that_raises_fails_with_its_message(user_file, capsys):
    code, out, _ = run(
        capsys,
        f"{user_file}:broken",
        "--as",
        "attention.scaled_dot_product",
        "--layout",
        LAYOUT,
        "--profile",
        "quick",
    )
    assert code == 1
    assert "raised ValueError: not implemented yet" in out


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (
            ["{f}:attention", "--as", "attention.nope", "--layout", LAYOUT],
            r"unknown equation|attention\.nope",
        ),
        (
            ["{f}:NOT_CALLABLE", "--as", "attention.scaled_dot_product"],
            r"NOT_CALLABLE is a int, not callable",
        ),
        (["{f}:missing", "--as", "attention.scaled_dot_product"], r"has no attribute 'missing'"),
        (["no/such/file.py:f", "--as", "attention.scaled_dot_product"], r"there is no file no/such/file.py"),
        (["nonexistent_pkg_xyz:f", "--as", "attention.scaled_dot_product"], r"ModuleNotFoundError"),
        (
            ["{f}:opaque", "--as", "attention.scaled_dot_product"],
            r"cannot tell which of attention.scaled_dot_product's symbols \(Q, K, V, S\) or sizes the "
            r"arguments 'a', 'b', 'c', 'd' take: write the binding with --layout",
        ),
        (
            ["{f}:attention", "--as", "attention.scaled_dot_product", "--explain", "--init", "d=1"],
            r"--explain takes one function or module class",
        ),
        (
            ["{f}:attention", "--as", "attention.scaled_dot_product", "--layout", "q=b n d_k"],
            r"no single '->'",
        ),
        (
            ["{f}:attention", "--as", "attention.scaled_dot_product", "--layout", LAYOUT, "--mask", "maybe"],
            r"--mask",
        ),
        (["{f}:attention", "--as", "attention.scaled_dot_product", "--dtype", "float8"], r"--dtype"),
        (["{f}:attention", "--as", "attention.scaled_dot_product", "--profile", "slow"], r"unknown profile"),
        (
            ["{f}:attention", "--as", "attention.scaled_dot_product", "--size", "d_e=big"],
            r"not a whole number",
        ),
        (["{f}:attention", "--as", "attention.scaled_dot_product", "--constant", "eps"], r"KEY=VALUE"),
        (
            ["{f}:attention", "--as", "attention.scaled_dot_product", "--device", "cuda:9"],
            r"not available here",
        ),
        (["{f}:attention"], r"say which equation"),
        ([], r"say what to audit"),
        (["--builtins", "jax"], r"--builtins takes torch, hf or all"),
        (["torch.nn.NotAThing"], r"expected a built-in name"),
    ],
)
def test_bad_input_is_exit_2_and_one_sentence(user_file, capsys, args, sentence):
    args = [a.replace("{f}", str(user_file)) for a in args]
    code, out, err = run(capsys, *args)
    assert code == 2, out + err
    assert err.startswith("lmspec: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err + out
    assert re.search(sentence, err), err


def test_unwritable_report_is_refused_before_the_audit(user_file, tmp_path, capsys):
    code, _, err = run(
        capsys,
        f"{user_file}:attention",
        "--as",
        "attention.scaled_dot_product",
        "--layout",
        LAYOUT,
        "--json",
        str(tmp_path),
    )
    assert code == 2 and "it is a directory" in err


def test_list_shows_every_builtin(capsys):
    from lmspec.verify.audit.adapters import builtins

    code, out, _ = run(capsys, "--list")
    assert code == 0
    for name in builtins():
        assert name in out
    assert f"{len(builtins())} built-ins" in out


def test_a_builtin_by_name(capsys):
    code, out, _ = run(capsys, "torch.nn.LayerNorm", "--profile", "quick")
    assert code == 0, out
    assert "torch.nn.LayerNorm as norm.layer_norm[eps]: pass" in out


def test_json_report_is_byte_identical_for_a_seed(user_file, tmp_path, capsys):
    texts = []
    for k in range(2):
        path = tmp_path / f"r{k}.json"
        run(
            capsys,
            f"{user_file}:unscaled",
            "--as",
            "attention.scaled_dot_product",
            "--layout",
            LAYOUT,
            "--profile",
            "quick",
            "--seed",
            "5",
            "--json",
            str(path),
        )
        texts.append(path.read_bytes())
    assert texts[0] == texts[1]


def test_readme_audit_walkthrough_runs_as_written(tmp_path, capsys, monkeypatch):
    """The README's one-command audit of a user's attention function: the file and the command, verbatim."""
    text = README.read_text(encoding="utf-8")
    source = re.search(r"```python\n# my_attention\.py\n(.*?)```", text, re.S)
    command = re.search(r"^lmspec audit my_attention\.py:attention (.*)$", text, re.M)
    assert source and command, "the README has the audit walkthrough"
    (tmp_path / "my_attention.py").write_text(source.group(1))
    monkeypatch.chdir(tmp_path)
    args = re.findall(r'"[^"]*"|\S+', command.group(1))
    code = main(["audit", "my_attention.py:attention", *[a.strip('"') for a in args]])
    out = capsys.readouterr().out
    verdict = re.search(r"^\s*# → (\w+)", text[command.end() :], re.M)
    assert verdict, "the README says what the walkthrough's audit concludes"
    assert f": {verdict.group(1)}" in out
    assert code == (0 if verdict.group(1) == "pass" else 1)


def test_docs_list_every_builtin_mapping_as_generated(capsys):
    """docs/audit.md ends with `lmspec audit --list --markdown`, verbatim."""
    docs = (README.parent / "docs" / "audit.md").read_text(encoding="utf-8")
    code, out, _ = run(capsys, "--list", "--markdown")
    assert code == 0
    marker = "Generated by `lmspec audit --list --markdown` (a test keeps this section up to date).\n\n"
    assert marker in docs
    assert docs.split(marker, 1)[1] == out, "regenerate docs/audit.md's last section"


MODULE = """
import math
import torch


class SelfAttention(torch.nn.Module):
    def __init__(self, d_model, n_head):
        super().__init__()
        self.n_head = n_head
        self.qkv = torch.nn.Linear(d_model, 3 * d_model)
        self.proj = torch.nn.Linear(d_model, d_model)

    def forward(self, x, mask):
        b, n, d = x.shape
        heads = (t.view(b, n, self.n_head, -1).transpose(1, 2) for t in self.qkv(x).split(d, -1))
        q, k, v = heads
        scores = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~mask[:, None], float("-inf"))
        out = torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))
"""


def test_a_module_class_from_the_command_line(tmp_path, capsys):
    """--init builds it per size tuple, --param fills its fused weights, --derive ties d_e = M·d_k."""
    path = tmp_path / "model.py"
    path.write_text(MODULE)
    common = [
        f"{path}:SelfAttention",
        "--as",
        "attention.multi_head",
        "--init",
        "d_model=d_e",
        "--init",
        "n_head=M",
        "--param",
        "qkv.weight=W_Q, W_K, W_V -> (3 M d_k) d_e",
        "--param",
        "qkv.bias=b_Q, b_K, b_V -> (3 M d_k)",
        "--param",
        "proj.weight=W_O -> d_e (M d_v)",
        "--param",
        "proj.bias=b_O",
        "--layout",
        "x:H=b n d_e, mask:S=b n n -> b n d_e",
        "--mask",
        "bool_keep",
        "--profile",
        "quick",
    ]
    code, out, err = run(capsys, *common, "--derive", "d_e=M*d_k", "--derive", "d_v=d_k")
    assert code == 0, out + err
    assert "as attention.multi_head: pass" in out
    # without the ties the module cannot be built at the drawn sizes: the audit says so, it does not pass
    code, out, err = run(capsys, *common)
    assert code == 1 and ": fail" in out


def test_impl_audits_every_registered_implementation(monkeypatch, capsys):
    """--impl plans one audit per catalogue equation, each of impl/'s function (the audit itself is
    tested in tests/verify/test_audit.py; here it is recorded, not run)."""
    from lmspec import impl, spec
    from lmspec.verify.audit import auditor
    from lmspec.verify.audit.report import AuditReport

    seen = []

    def record(target, as_=None, **options):
        seen.append(target)
        return AuditReport(target, as_ or "?", "pass", "recorded", [])

    monkeypatch.setattr(auditor, "audit", record)
    code, out, _ = run(capsys, "--impl")
    assert code == 0
    want = [f"{f.__module__}:{f.__name__}" for f in (impl.implementation(e.id) for e in spec.all())]
    assert seen == want and len(seen) == len(spec.all())
    assert f"{len(want)} audited" in out


# --- --seeds K: the audit under K seeds, each target's verdicts and whether they agree --------------------
GELU = """
import math

def gelu(x):
    return 0.5 * x * (1.0 + (x / math.sqrt(2.0)).erf())
"""
GELU_AS = ["--as", "activation.gelu", "--layout", "x:X=b n d_e -> b n d_e"]


@pytest.fixture
def gelu_file(tmp_path):
    path = tmp_path / "act.py"
    path.write_text(GELU)
    return path


def test_seeds_audits_each_seed_and_reports_agreement(gelu_file, tmp_path, capsys):
    path = tmp_path / "seeds.json"
    code, out, err = run(
        capsys,
        f"{gelu_file}:gelu",
        *GELU_AS,
        "--profile",
        "quick",
        "--seed",
        "3",
        "--seeds",
        "2",
        "--json",
        str(path),
    )
    assert code == 0, out + err
    assert "audit over seeds 3–4" in out and "pass ×2" in out
    assert "1 audited under 2 seeds (3–4)" in out and "1 of 1 agree across seeds" in out
    doc = json.loads(path.read_text())
    assert [(r["seed"], r["verdict"]) for r in doc["reports"]] == [(3, "pass"), (4, "pass")]


def _fake_audit(verdict_of_seed):
    """verify.audit.audit stand-in: a report whose verdict is a function of the seed (a flaky check)."""
    from lmspec.verify.audit.report import AuditCheck, AuditReport

    def fake(target, as_=None, *, seed=0, **_):
        verdict = verdict_of_seed(seed)
        status = "pass" if verdict == "pass" else "fail"
        check = AuditCheck("value=oracle", status, "" if status == "pass" else f"off at seed {seed}")
        summary = f"{verdict} at seed {seed}"
        return AuditReport(str(target), as_ or "lm.softmax", verdict, summary, [check], seed=seed)

    return fake


def test_seeds_a_consistent_variant_exits_1_as_a_single_seed_does(monkeypatch, capsys):
    from lmspec.verify.audit import auditor

    monkeypatch.setattr(auditor, "audit", _fake_audit(lambda s: "variant"))
    code, out, _ = run(capsys, "pkg:softmax", "--as", "lm.softmax", "--seeds", "3")
    assert code == 1
    assert "variant ×3" in out and "1 of 1 agree across seeds" in out
    assert "seed 0 (every seed agrees):" in out and "off at seed 0" in out


def test_seeds_that_disagree_exit_1_and_show_the_odd_seeds(monkeypatch, capsys):
    from lmspec.verify.audit import auditor

    monkeypatch.setattr(auditor, "audit", _fake_audit(lambda s: "fail" if s == 7 else "pass"))
    code, out, _ = run(capsys, "pkg:softmax", "--as", "lm.softmax", "--seed", "5", "--seeds", "4")
    assert code == 1
    assert "pass ×3, fail ×1 (seed 7)" in out
    assert "seeds disagree on pkg:softmax" in out and "seed 7:" in out and "off at seed 7" in out
    assert "NO" in out and "0 of 1 agree across seeds" in out


def test_seeds_names_every_odd_seed_as_ranges(monkeypatch, capsys):
    from lmspec.verify.audit import auditor

    odd = {1, 2, 3, 6}
    monkeypatch.setattr(auditor, "audit", _fake_audit(lambda s: "variant" if s in odd else "pass"))
    code, out, _ = run(capsys, "pkg:softmax", "--as", "lm.softmax", "--seeds", "10")
    assert code == 1
    assert "pass ×6, variant ×4 (seeds 1–3, 6)" in out


def test_seeds_one_keeps_the_single_seed_report(gelu_file, capsys):
    code, out, _ = run(capsys, f"{gelu_file}:gelu", *GELU_AS, "--profile", "quick", "--seeds", "1")
    assert code == 0
    assert ": pass" in out and "1 audited in" in out and "audit over seeds" not in out


@pytest.mark.parametrize("value", ["0", "-2"])
def test_seeds_below_one_is_exit_2_and_one_sentence(user_file, capsys, value):
    code, out, err = run(
        capsys, f"{user_file}:attention", "--as", "attention.scaled_dot_product", "--seeds", value
    )
    assert code == 2, out + err
    assert err == f"lmspec: error: --seeds must be at least 1, found {value}\n"


def _cookbook() -> list[tuple[str, str, str, str]]:
    """docs/audit.md's cookbook: (file name, its source, the command's arguments, the verdict it states)."""
    text = (README.parent / "docs" / "audit.md").read_text(encoding="utf-8")
    found = []
    for m in re.finditer(
        r"```python\n# (\w+\.py)\n(.*?)```\s*```sh\n(lmspec audit .*?)\n# → (\w+)\n```", text, re.S
    ):
        command = m.group(3).replace("\\\n", " ")
        found.append((m.group(1), m.group(2), command, m.group(4)))
    return found


COOKBOOK = _cookbook()


def test_the_cookbook_has_every_mask_convention_without_an_n_by_n_matrix():
    used = {m.group(1) for _, _, c, _ in COOKBOOK if (m := re.search(r"--mask (\w+)", c))}
    assert {"key_padding", "key_keep_int", "key_additive", "causal", "none"} <= used


@pytest.mark.parametrize("name, source, command, verdict", COOKBOOK, ids=[c[0] for c in COOKBOOK])
def test_every_cookbook_command_runs_as_written(
    name, source, command, verdict, tmp_path, capsys, monkeypatch
):
    (tmp_path / name).write_text(source)
    monkeypatch.chdir(tmp_path)
    args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', command)][2:]  # after "lmspec audit"
    code, out, err = run(capsys, *args)
    assert f": {verdict}" in out, out + err
    assert code == (0 if verdict == "pass" else 1)
    mask = re.search(r"--mask (\w+)", command)
    if mask and mask.group(1) in ("causal", "none", "key_padding"):  # the report says how S was held
        said = {"causal": "S is fixed to the causal mask", "none": "S is fixed to 0",
                "key_padding": "the mask is taken per key (key_padding)"}  # fmt: skip
        assert f"note: {said[mask.group(1)]}" in out


def test_mask_causal_on_an_equation_without_a_mask_is_one_sentence_exit_2(capsys):
    code, _, err = run(capsys, "lmspec.impl.norm:layer_norm", "--mask", "causal")
    assert code == 2
    assert err.strip() == (
        "lmspec: error: --mask causal fixes the mask of an equation with one; norm.layer_norm takes none"
    )


@pytest.mark.parametrize(
    "size, message",
    [
        ("d_k=-4", "--size d_k=-4: a size is a whole number from 1"),
        ("d_k=0", "--size d_k=0: a size is a whole number from 1"),
        ("d_k=5000", "--size d_k=5000: the audit fixes sizes up to 1024 (it draws every entry)"),
        ("foo=3", "--size foo=3: 'foo' is not an axis of attention.scaled_dot_product (n, d_k, d_v)"),
    ],
)
def test_a_size_the_audit_cannot_fix_is_one_sentence_exit_2_before_any_check(size, message, capsys):
    """Once a traceback (−4), a verdict `fail` (0) and a hang (5000); a size is checked before any work."""
    code, out, err = run(
        capsys, "torch.nn.functional.scaled_dot_product_attention[bool_mask]", "--size", size
    )
    assert code == 2 and not out
    assert err.startswith(f"lmspec: error: {message}") and len(err.strip().splitlines()) == 1


def test_a_hugging_face_builtin_without_transformers_is_an_error_not_a_fail(monkeypatch, capsys):
    """A setup problem (transformers not installed) says how to install it, exit 2; once a `fail`."""
    from lmspec.verify.audit import auditor

    monkeypatch.setattr(auditor, "_installed", lambda package: package != "transformers")
    code, out, err = run(capsys, "transformers.GPT2Block", "-p", "quick")
    assert code == 2 and not out.strip().endswith("fail")
    assert "GPT2Block is built with Hugging Face transformers, which is not installed here" in err
    assert "pip install 'lmspec[hf]'" in err


def test_a_report_to_dash_takes_stdout_and_the_human_output_goes_to_stderr(capsys):
    code, out, err = run(capsys, "lmspec.impl.norm:layer_norm", "-p", "quick", "--json", "-")
    assert code == 0
    doc = json.loads(out)  # stdout is the report alone
    assert doc["reports"][0]["verdict"] == "pass"
    assert set(doc["versions"]) == {"lmspec", "torch", "python"}
    assert "layer_norm as norm.layer_norm: pass" in err


@pytest.mark.parametrize("paths", [("x.json", "x.json"), ("-", "-")])
def test_two_reports_to_one_place_are_refused_before_the_run(capsys, tmp_path, monkeypatch, paths):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "lmspec.impl.norm:layer_norm", "--json", paths[0], "--junit", paths[1])
    assert code == 2
    where = "standard output" if paths[0] == "-" else "x.json"
    assert err.strip() == f"lmspec: error: --json and --junit would both write {where}: give each its own"


def test_junit_reports_carry_the_versions(capsys, tmp_path):
    path = tmp_path / "r.xml"
    code, _, _ = run(capsys, "lmspec.impl.norm:layer_norm", "-p", "quick", "--junit", str(path))
    assert code == 0
    xml = path.read_text()
    for key in ("lmspec_version", "torch_version", "python_version"):
        assert f'<property name="{key}"' in xml


def test_junit_conforms_to_junit_10_and_a_binding_problem_is_an_error(user_file, capsys, tmp_path, junit10):
    """The audit's JUnit XML validates against junit-10's structure; a target that cannot be bound is an
    <error> (lmspec could not run it), never a <failure> (a verdict on the code)."""
    problems = junit10

    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    run(capsys, f"{user_file}:unscaled", "--as", "attention.scaled_dot_product", "--layout", LAYOUT,
        "--mask", "bool_keep", "-p", "quick", "--junit", str(good))  # fmt: skip
    assert problems(good.read_text()) == []
    assert "<failure" in good.read_text() and 'errors="0"' in good.read_text()
    code, _, _ = run(capsys, f"{user_file}:attention", "--as", "attention.scaled_dot_product", "--layout",
                     "q=b h n d_k, k=b h n d_k, v=b h n d_v -> b h n d_v", "--junit", str(bad))  # fmt: skip
    xml = bad.read_text()
    assert code == 2 and problems(xml) == []
    assert "<error " in xml and "<failure" not in xml and 'errors="1"' in xml and 'failures="0"' in xml
