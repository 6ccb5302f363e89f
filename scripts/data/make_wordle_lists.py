"""Builds wordle_guesses.txt and wordle_answers.txt (run once, offline, in a scratch virtualenv with
``pip install english-words wordfreq``; neither package is needed at run time). It writes into the
current directory, so run it in the data directory:

    cd turngym/envs/games/data && python ../../../../scripts/data/make_wordle_lists.py

Wordle lists: guesses = 5-letter lower-case words of english-words' web2 and gcide (no proper nouns) that
wordfreq knows (zipf >= 2.0); answers = the most frequent of them (zipf >= 3.3, no plural/-ed forms, no word that is also a capitalised name in web2)."""
from english_words import get_english_words_set
from wordfreq import zipf_frequency
web2 = get_english_words_set(["web2"], lower=False, alpha=True)
src = get_english_words_set(["web2"], lower=False, alpha=True) | get_english_words_set(["gcide"], lower=False, alpha=True)
five = sorted({w for w in src if len(w) == 5 and w.isalpha() and w.islower() and w.isascii()})
z = {w: zipf_frequency(w, "en") for w in five}
guesses = sorted(w for w in five if z[w] >= 2.0)
gs = set(guesses)
low = {w.lower() for w in src}
def inflected(w):
    return (w.endswith("s") and not w.endswith("ss") and (w[:-1] in low or w[:-2] in low)) or (w.endswith("ed") and (w[:-2] in low or w[:-1] in low)) or w.capitalize() in web2
answers = sorted(w for w in guesses if z[w] >= 3.3 and not inflected(w))
print(len(five), len(guesses), len(answers))
print(answers[:40])
open("wordle_guesses.txt", "w").write("\n".join(guesses) + "\n")
open("wordle_answers.txt", "w").write("\n".join(answers) + "\n")
