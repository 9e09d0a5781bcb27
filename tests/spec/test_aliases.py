"""Aliases: names people look for resolve to catalogue ids (spec.aliases), everywhere an id is taken."""

import pytest

from lmspec import spec
from lmspec.spec.aliases import ALIASES
from lmspec.verify.cli import main


@pytest.mark.parametrize("alias", list(ALIASES))
def test_every_alias_names_an_equation_of_the_catalogue(alias):
    target, what = ALIASES[alias]
    assert spec.get(alias) is spec.get(target) and what
    assert alias not in {e.id for e in spec.all()}  # an alias never hides a tutorial id


def test_the_blocks_people_name_are_the_forms_their_code_computes():
    # GELU's tanh form is the pre-LN block's own (GPT-2's); the exact GELU is its variant gelu (ViT's)
    assert spec.get("gpt2.block").id == "transformer.block_pre_ln[eps]"
    assert spec.get("vit.block").id == "transformer.block_pre_ln[gelu_eps]"
    assert spec.get("bert.layer").id == "transformer.block_post_ln[eps]"
    assert spec.get("lstm.step").id == "lstm.hidden"


def test_list_shows_the_aliases_of_the_families_listed_and_a_typo_suggests_one(capsys):
    assert main(["list", "--family", "transformer"]) == 0
    out = capsys.readouterr().out
    assert "gpt2.block" in out and "transformer.block_pre_ln[eps]" in out and "rnn.cell" not in out
    assert main(["show", "gpt2.blok"]) == 2
    assert "did you mean gpt2.block" in capsys.readouterr().err
