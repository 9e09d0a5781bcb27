"""Faithful labels (issue 16 §4): each equation's status tag matches its evidence.

The tags are CATALOGUE.md's (the project's equation catalogue of "Anatomy of Neural Language Models",
Saleh & Paquelet 2024), copied with their provenance into docs/status.md so that a clean clone can check
them; this test reads that table and holds every registered equation to its row.
"""

import re
from pathlib import Path

import pytest

from lmspec import spec
from lmspec.spec import SpecError
from lmspec.spec.equation import SECTION_NOTE, STATUS_MEANINGS, STATUS_WORDS, Reference

STATUS_DOC = Path(__file__).resolve().parents[2] / "docs" / "status.md"


def documented_tags() -> dict[str, str]:
    """``{id: tag}`` from the rows ``| `id` | tag | note |`` of docs/status.md."""
    rows = re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \| ([^|]+?) \|", STATUS_DOC.read_text("utf-8"), re.M)
    assert rows, f"no tag rows found in {STATUS_DOC}"
    tags = dict(rows)
    assert len(tags) == len(rows), "an id has two rows in docs/status.md"
    return tags


TAGS = documented_tags()


def test_every_equation_has_a_row_and_every_row_an_equation():
    assert sorted(e.id for e in spec.all()) == sorted(TAGS)


@pytest.mark.parametrize("eq_id", sorted(TAGS))
def test_each_tag_is_the_catalogues(eq_id):
    assert spec.get(eq_id).reference.tag == TAGS[eq_id]


def test_the_overclaims_of_issue_16_are_gone():
    """Not in the authors' companion code (their numpy GPT-2 and their parameter formulas): reconstructed."""
    for eq_id in ("gpt2.loss", "gpt2.generate", "gpt2.lm_head", "activation.gelu"):
        ref = spec.get(eq_id).reference
        assert (ref.tag, ref.word) == ("R", "reconstructed"), eq_id
        assert str(ref).endswith(" [reconstructed]")
    assert spec.get("gpt2.forward").reference.word == "confirmed"  # the companion code's inference pass


def test_mixed_tags_say_the_count_is_confirmed_and_the_form_reconstructed():
    for eq_id in ("bert.input", "bert.mlm_head", "bert.pooler"):
        ref = spec.get(eq_id).reference
        assert (ref.status, ref.count_status, ref.tag) == ("R", "T", "T count, R form")
        assert ref.word == "count confirmed, form reconstructed"
        assert ref.meaning.startswith("the parameter count is confirmed by the tutorial's parameter formulas")
        assert str(ref).endswith(" [count confirmed, form reconstructed]")


def test_every_tag_has_a_word_and_a_meaning():
    assert set(STATUS_WORDS) == set(STATUS_MEANINGS) == {e.reference.tag for e in spec.all()}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(status="X"),
            r"^a reference's status is 'T' \(confirmed\) or 'R' \(reconstructed\), found 'X'$",
        ),
        (dict(status="R", count_status="R"), r"^a reference's count_status is None, or 'T' .* status 'R'$"),
        (dict(status="T", count_status="R"), r"found count_status='R' with status 'T'$"),
        (dict(status="T", count_status="T"), r"found count_status='T' with status 'T'$"),
    ],
)
def test_a_malformed_status_is_a_spec_error(kwargs, message):
    with pytest.raises(SpecError, match=message):
        Reference("t", **kwargs)


def test_section_numbers_are_printed_as_reconstructed_equation_numbers_as_known():
    mha = spec.get("attention.multi_head").reference
    assert str(mha) == (
        "Saleh & Paquelet 2024, Transformers: attention (§4, numbering reconstructed), equation (28); "
        "Vaswani et al. 2017, §3.2.2 [confirmed]"
    )
    # a section without a number is printed as it is
    assert str(spec.get("gpt2.loss").reference).startswith("Saleh & Paquelet 2024, GPT-2; Radford")
    for eq in spec.all():
        text = str(eq.reference).split(";")[0]  # the tutorial's part, before the original source
        assert not re.search(r"§\d+ ", text), f"{eq.id}: {text}"
        assert eq.reference.number in (None, "28", "37"), eq.id  # the only numbers known for certain
    assert {e.id for e in spec.all() if e.reference.number} == {"attention.multi_head", "transformer.ffn"}
    assert "(28)" in SECTION_NOTE and "(37)" in SECTION_NOTE and "reconstructions" in SECTION_NOTE
