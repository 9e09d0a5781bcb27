"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    api = [b for b in blocks if "from lmspec.verify import verify" in b]
    assert api, "the README has a Python API example"
    namespace: dict = {}
    exec(api[0], namespace)
    results = namespace["results"]
    assert results and all(r.passed for r in results)


def test_public_error_families():
    from lmspec import spec, verify

    assert issubclass(verify.BindingError, spec.SpecError)
    for cls in (verify.ShapeMismatch, verify.ValueMismatch, verify.PropertyViolation):
        assert issubclass(cls, verify.Mismatch) and not issubclass(cls, spec.SpecError)


def test_readme_params_examples_print_the_numbers_they_quote(capsys):
    """Each tour line ``lmspec params ... # N`` prints ``N = <that number>``."""
    from lmspec.verify.cli import main

    text = README.read_text(encoding="utf-8")
    lines = re.findall(r"^lmspec params ([^#\n]+?)\s+#.*?([\d,]{7,})", text, re.M)
    assert len(lines) == 2  # gpt2 (124,439,808) and a block (593,024)
    for args, number in lines:
        assert main(["params", *args.split()]) == 0
        assert f"N = {number} " in capsys.readouterr().out
