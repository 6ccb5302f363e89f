"""The data scripts of scripts/data/ (they make the data files the package ships; nothing in turngym
imports them)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "scripts" / "data"


def load_script(name: str) -> ModuleType:
    """``scripts/data/NAME.py`` as a module (its ``__main__`` block does not run)."""
    spec = importlib.util.spec_from_file_location(f"data_{name}", BUILD / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nltk_data_builder_picks_the_most_frequent_tag_and_frequent_basic_words(tmp_path):
    nltk_data = load_script("nltk_data")

    yml = tmp_path / "words.yml"
    yml.write_text('--- #YAML:1.0\n"the": { det: 900 }\ndog: { nn: 10, vb: 2 }\nrun: { vb: 7, nn: 3 }\n"\'s": { pos: 5 }\n')
    lexicon = nltk_data.read_lexicon(yml)
    weights, tagdict, classes = nltk_data.tagger_params(lexicon)
    assert tagdict == {"the": "DT", "dog": "NN", "run": "VB", "'s": "POS"}
    assert weights == {"bias": {"NN": 1.0}} and "DT" in classes
    assert nltk_data.basic_words(lexicon, {"the", "dog", "run"}, n=2) == ["dog", "the"]  # 900 and 12 uses beat 10
    with pytest.raises(FileNotFoundError, match="liblingua-en-tagger-perl"):
        nltk_data.read_lexicon(tmp_path / "missing.yml")


@pytest.mark.parametrize("script, data", [("make_cities", "cities.json"), ("make_twenty_questions", "twenty_questions.json")])
def test_the_shipped_game_data_is_what_its_script_makes(tmp_path, script, data):
    out = tmp_path / data
    subprocess.run([sys.executable, str(BUILD / f"{script}.py"), str(out)], check=True, capture_output=True, timeout=60)
    assert out.read_bytes() == (REPO / "turngym" / "envs" / "games" / "data" / data).read_bytes()
