"""The registry of equations (spec/registry.py) and the catalogue (spec/catalogue.py): ids, order, errors,
and each family module standing on the modules it imports, not on the catalogue having been loaded."""

import subprocess
import sys

import pytest

from lmspec import spec
from lmspec.spec import SpecError, UnknownEquation, catalogue, registry


def test_the_catalogue_is_the_families_in_the_tutorials_order():
    eqs = spec.all()
    assert len(eqs) == 84  # params.segment and params.pooler (issue 16 §4) made 84
    order = [eq.family for eq in eqs]
    assert order == sorted(order, key=spec.FAMILIES.index)
    assert list(spec.families()) == list(spec.FAMILIES)
    assert [eq.id for eq in spec.families()["gru"]] == ["gru.step"]
    assert spec.FAMILIES[:5] == ("lm", "ffnn", "rnn", "lstm", "gru")


def test_the_face_is_the_catalogue():
    assert spec.get is catalogue.get and spec.all is catalogue.all and spec.FAMILIES is catalogue.FAMILIES
    assert spec.get("attention.multi_head") is registry.lookup("attention.multi_head")


def test_get_resolves_ids_and_variants():
    eq = spec.get("rnn.output[lstm]")
    assert eq.id == "rnn.output[lstm]" and eq.variant_of == "rnn.output" and eq.variant_name == "lstm"
    assert eq is spec.get("rnn.output").variant("lstm")  # built once


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            "attention.nope",
            r"^unknown equation 'attention\.nope'; did you mean attention\.sdpa or attention or "
            r"attention\.cross\? \(`lmspec list` shows the catalogue\)$",  # aliases are suggested too
        ),
        ("normal", r"^unknown equation 'normal'; did you mean norm\? \(`lmspec list` shows the catalogue\)$"),
        ("lm", r"^unknown equation 'lm'; lm is a family, of lm\.chain_rule, "),
        ("nope", r"^unknown equation 'nope'; `lmspec list` shows the catalogue$"),
        (
            "rnn.output[lstm",
            r"^malformed equation id 'rnn\.output\[lstm': expected 'family\.name\[variant\]'$",
        ),
        ("rnn.output[nope]", r"^rnn\.output has no variant 'nope' \(variants: lstm, gru\)$"),
    ],
)
def test_an_unknown_id_is_an_unknown_equation(bad, message):
    with pytest.raises(UnknownEquation, match=message):
        spec.get(bad)


def test_select_takes_ids_and_family_names():
    chosen = spec.select(["norm", "attention.multi_head"])
    assert [eq.id for eq in chosen] == ["norm.layer_norm", "attention.multi_head"]
    with pytest.raises(UnknownEquation, match="unknown equation 'normal'"):
        spec.select(["normal"])


def test_family_module_names_a_family_of_the_catalogue():
    assert catalogue.family_module("norm").__name__ == "lmspec.spec.norm"
    with pytest.raises(
        UnknownEquation, match=r"^unknown equation family 'nrom'; the families are lm, ffnn, "
    ):
        catalogue.family_module("nrom")


def test_an_id_is_registered_once():
    eq = spec.get("norm.layer_norm")
    with pytest.raises(SpecError, match=r"^equation norm\.layer_norm is registered twice$"):
        registry.register(eq)
    assert registry.registered().count(eq) == 1


# Each family module, imported alone in a fresh interpreter, registers its equations and builds every
# variant: an equation that calls another family's (transformer → attention, rnn → lstm and gru) finds it
# because its module imports that family's module, not because the catalogue happened to be loaded.
_ALONE = """
import importlib, sys
from lmspec.spec import catalogue, registry
module = importlib.import_module("lmspec.spec." + sys.argv[1])
mine = [eq for eq in registry.registered() if eq.family == sys.argv[1]]
for eq in mine:
    eq.variants()
print(len(mine), catalogue._LOADED)
"""


def test_each_family_module_stands_on_the_modules_it_imports():
    runs = {
        family: subprocess.Popen(
            [sys.executable, "-c", _ALONE, family], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for family in spec.FAMILIES
    }
    counts, failures = {}, []
    for family, run in runs.items():
        out, err = run.communicate(timeout=600)
        if run.returncode:
            failures.append(f"{family}: {err.strip().splitlines()[-1]}")
        else:
            count, loaded = out.split()
            counts[family] = int(count)
            assert loaded == "False", f"importing {family} loaded the whole catalogue"
    assert not failures, "\n".join(failures)
    assert counts == {f: len(eqs) for f, eqs in spec.families().items()}


def test_a_call_of_an_unregistered_equation_names_it():
    code = (
        "from lmspec.spec import tensor, UnknownEquation\n"
        "from lmspec.spec.axes import n\n"
        "from lmspec.spec.ops_nn import call\n"
        "try:\n"
        "    call('attention.softmax_rows', 'Y', Z=tensor('Z', (n, n)))\n"
        "except UnknownEquation as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (
        out.stdout.strip() == "unknown equation 'attention.softmax_rows'; `lmspec list` shows the catalogue"
    )
