"""Probe (docs/recognition.md section 13): training utterances of shuffled words, so that no sentence can be
recognised as a whole.

Section 12 found the model recognizes the words it knows less than half as well in sentences it has not heard. This
script draws word sequences at random from the training transcripts' own words (frequency-weighted: the word stream
of the training sentences, each distinct sentence once; lengths drawn from those sentences' word counts), so the
vocabulary stays the training one and dev and test stay untouched; each sequence is spoken once by a seen voice with
the corpus builder's ranges (`extra_sentences.speak`), and those of <= 5 s are written to OUT/shuffled_max5s.jsonl and,
appended to the training manifest, OUT/train_shuffled.jsonl. Each language gets as many sequences as keeps its share
of the training manifest.

    python docs/recognition/shuffled_words.py corpus10k/train_max5s.jsonl corpus10k 9000

With two spelling dictionaries (Debian's wamerican and wngerman) the words are drawn from those instead, each word
equally likely:

    apt-get download wamerican=2020.12.07-2 wngerman=20161207-11 && for f in w*.deb; do dpkg-deb -x $f dict; done
    python docs/recognition/shuffled_words.py corpus10k/train_max5s.jsonl corpus10k 9000 \
        dict/usr/share/dict/american-english dict/usr/share/dict/ngerman
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extra_sentences import speak  # noqa: E402

EDGE = re.compile(r"^[^\w']+|[^\w']+$")  # punctuation at a word's ends (apostrophes stay: "don't")


def word_stream(sentences: list[str]) -> tuple[list[str], list[int]]:
    """The sentences' words in order, punctuation stripped from their ends, and the sentences' word counts. A
    sentence's first word is lower-cased where its lower-case form occurs inside some sentence ("The" -> "the", but
    "I" and German nouns stay)."""
    split = [[w for w in (EDGE.sub("", t) for t in s.split()) if w] for s in sentences]
    inner = {w for words in split for w in words[1:]}
    stream = []
    for words in split:
        if words and words[0].lower() in inner:
            words = [words[0].lower(), *words[1:]]
        stream.extend(words)
    return stream, [len(words) for words in split if words]


def as_sentence(words: list[str]) -> str:
    """Words joined, the first letter capitalized, a full stop at the end."""
    text = " ".join(words)
    return text[:1].upper() + text[1:] + "."


def sequences(sentences: list[str], count: int, rng: np.random.Generator) -> list[str]:
    """`count` sequences of words drawn independently from the sentences' word stream, lengths drawn from theirs."""
    stream, lengths = word_stream(sentences)
    rows = []
    for n in rng.choice(lengths, size=count):
        rows.append(as_sentence([stream[i] for i in rng.integers(len(stream), size=n)]))
    return rows


LEXICON_WORD = {"en": re.compile(r"[a-z]+"), "de": re.compile(r"[a-zäöüß]+|[A-ZÄÖÜ][a-zäöüß]+")}


def lexicon_words(path: Path, lang: str) -> list[str]:
    """A spelling dictionary's plain words (English: lower case only, so no names or possessives; German: lower case
    or a capitalised noun)."""
    words = path.read_text(encoding="utf-8", errors="ignore").split()
    return sorted({w for w in words if LEXICON_WORD[lang].fullmatch(w)})


def lexicon_sequence(words: list[str], chars: int, rng: np.random.Generator) -> str:
    """Dictionary words drawn uniformly until the next would pass `chars` characters (at least one): a sentence's
    length in letters, so the audio lasts about as long as a training sentence's."""
    drawn = [words[rng.integers(len(words))]]
    while True:
        word = words[rng.integers(len(words))]
        if sum(map(len, drawn)) + len(drawn) + len(word) > chars:
            break
        drawn.append(word)
    return as_sentence(drawn)


def main(train_manifest: Path, out: Path, total: int, lexicons: dict[str, Path] | None = None) -> None:
    """Without `lexicons`: sequences of the training words. With them: of a dictionary's words, each equally likely
    (words the training text never has, to teach the token head the sounds of token pieces)."""
    rows = [json.loads(line) for line in train_manifest.read_text(encoding="utf-8").splitlines()]
    texts = {}
    for lang in ("en", "de"):
        sentences = list(dict.fromkeys(r["text"] for r in rows if r["language"] == lang))  # distinct, in order
        share = sum(r["language"] == lang for r in rows) / len(rows)
        rng = np.random.default_rng([11, len(lang), 2026])
        if lexicons:
            words = lexicon_words(lexicons[lang], lang)
            texts[lang] = [lexicon_sequence(words, len(s), rng)
                           for s in rng.choice(sentences, size=round(total * share))]
        else:
            texts[lang] = sequences(sentences, round(total * share), rng)
        print(f"{lang}: {len(texts[lang])} sequences, e.g.", texts[lang][:3], flush=True)
    tag = "lexicon" if lexicons else "shuffled"
    kept = speak(texts, out, tag, 1, seed=9)
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in kept]
    (out / f"{tag}_max5s.jsonl").write_text("".join(lines), encoding="utf-8")
    (out / f"train_{tag}.jsonl").write_text(train_manifest.read_text(encoding="utf-8") + "".join(lines),
                                            encoding="utf-8")
    by_lang = {lang: sum(r["language"] == lang for r in kept) for lang in texts}
    print(f"{len(kept)} of {sum(map(len, texts.values()))} sequences of <= 5 s kept: {by_lang}", flush=True)


if __name__ == "__main__":  # TRAIN OUT TOTAL [EN_DICT DE_DICT]
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]),
         dict(zip(("en", "de"), map(Path, sys.argv[4:6]))) if len(sys.argv) > 4 else None)
