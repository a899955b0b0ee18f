"""Probe (docs/recognition.md section 12): more distinct training sentences, the dev and test splits unchanged.

The bundled sentence files keep a fixed 6,000 of the fortune files' candidates a language (8,588 English, 13,646
German; speechllm/resources/sentences/SOURCES.md). This script rebuilds every candidate with SOURCES.md's own code,
keeps those that are not in the bundled files (so none is a dev or test sentence) nor held-out text of the
forgetting measure, has each spoken twice by
consecutive seen voices with the corpus builder's rate, pitch and intonation ranges, and writes the utterances of
at most 5 s to OUT/extra_max5s.jsonl and, appended to the corpus's own training manifest, OUT/train_plus.jsonl.

    apt-get download fortunes=1:1.99.1-7.3 fortunes-de=0.35-1
    dpkg-deb -x fortunes_*.deb fortunes && dpkg-deb -x fortunes-de_*.deb fortunes-de
    python docs/recognition/extra_sentences.py fortunes fortunes-de corpus10k/train_max5s.jsonl corpus10k
    python docs/recognition/extra_sentences.py balance corpus10k/train_max5s.jsonl corpus10k  # same language shares
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from speechllm.data import synth
from speechllm.data.espeak import SAMPLE_RATE
from speechllm.evaluation.forgetting import heldout_sentences

SOURCES = Path(__file__).resolve().parents[2] / "speechllm/resources/sentences/SOURCES.md"
MAX_SECONDS = 5.0
REPEATS = 2


def candidate_code() -> dict:
    """SOURCES.md's sentence filter (entries, sentences, clean, the word lists), run without its main calls."""
    text = SOURCES.read_text(encoding="utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    code = "\n".join(line for line in code.splitlines() if not line.startswith("main("))
    namespace: dict = {}
    exec(compile(code, str(SOURCES), "exec"), namespace)  # noqa: S102 - our own documented code
    return namespace


def candidates(ns: dict, lang: str, root: Path) -> list[str]:
    """Every sentence SOURCES.md's filter keeps (its `main` without the 6,000 cut), in file order."""
    own, other = (ns["DE_WORDS"], ns["EN_WORDS"]) if lang == "de" else (ns["EN_WORDS"], ns["DE_WORDS"])
    seen, rows = set(), []
    for path in sorted(root.iterdir()):
        if path.suffix in {".dat", ".u8"} or path.is_symlink() or path.name in ns["SKIP"][lang]:
            continue
        for entry in ns["entries"](path):
            for s in ns["sentences"](entry):
                c = ns["clean"](s, lang)
                key = c and re.sub(r"[^\w]", "", c.lower())
                if c is None or key in seen:
                    continue
                seen.add(key)
                words = set(re.findall(r"[\wäöüß']+", c.lower()))
                if len(words & other) > len(words & own):
                    continue
                rows.append(c)
    return rows


def speak(texts: dict[str, list[str]], out: Path, tag: str, repeats: int, seed: int) -> list[dict]:
    """Has each text spoken `repeats` times by consecutive seen voices (the first drawn at random) with the corpus
    builder's rate, pitch and intonation ranges, into OUT/audio; returns the manifest rows of those <= 5 s."""
    tasks = []
    for lang, sentences in texts.items():
        voices = synth.voices_for(lang)
        rng = np.random.default_rng([seed, len(lang), 2026])
        first_voice = rng.integers(len(voices), size=len(sentences))
        for j, text in enumerate(sentences):
            for repeat in range(repeats):
                uid = f"{lang}_{tag}_{j:06d}_{repeat}"
                tasks.append({
                    "id": uid, "text": text, "language": lang,
                    "voice": voices[(first_voice[j] + repeat) % len(voices)],
                    "rate": int(rng.integers(synth.RATE_RANGE[0], synth.RATE_RANGE[1] + 1)),
                    "pitch": int(rng.integers(synth.PITCH_RANGE[0], synth.PITCH_RANGE[1] + 1)),
                    "pitch_range": int(rng.integers(synth.PITCH_SPREAD_RANGE[0], synth.PITCH_SPREAD_RANGE[1] + 1)),
                    "snr_db": None, "noise_kind": "white", "noise_seed": 0,
                    "audio": f"audio/{lang}/{uid}.flac", "path": str(out / "audio" / lang / f"{uid}.flac"),
                })
    lengths = synth._render_all(tasks, workers=2, show_progress=True)
    kept = []
    for task, n in zip(tasks, lengths):
        if 0 < n <= MAX_SECONDS * SAMPLE_RATE:
            kept.append({"id": task["id"], "audio": task["audio"], "text": task["text"], "language": task["language"],
                         "duration": round(n / SAMPLE_RATE, 4), "voice": task["voice"]})
    return kept


def main(fortunes: Path, fortunes_de: Path, train_manifest: Path, out: Path) -> None:
    ns = candidate_code()
    roots = {"en": fortunes / "usr/share/games/fortunes", "de": fortunes_de / "usr/share/games/fortunes/de"}
    texts = {}
    for lang, root in roots.items():
        bundled = set(synth.load_sentences(lang)) | set(heldout_sentences(lang))  # nor the forgetting measure's
        texts[lang] = [s for s in candidates(ns, lang, root) if s not in bundled]
        print(f"{lang}: {len(texts[lang])} sentences beyond the bundled and held-out ones", flush=True)
    kept = speak(texts, out, "extra", REPEATS, seed=7)
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in kept]
    (out / "extra_max5s.jsonl").write_text("".join(lines), encoding="utf-8")
    (out / "train_plus.jsonl").write_text(train_manifest.read_text(encoding="utf-8") + "".join(lines), encoding="utf-8")
    by_lang = {lang: sum(r["language"] == lang for r in kept) for lang in roots}
    print(f"{len(kept)} of {REPEATS * sum(map(len, texts.values()))} utterances of <= {MAX_SECONDS} s kept: {by_lang}", flush=True)


def balance(train_manifest: Path, out: Path) -> None:
    """OUT/train_plus_balanced.jsonl: the training manifest and as many extra utterances as keep its language
    shares (every extra utterance of the language with fewer, the others' in sentence order), so that no language
    gets fewer training steps than in the control run."""
    original = [json.loads(line) for line in train_manifest.read_text(encoding="utf-8").splitlines()]
    extra = [json.loads(line) for line in (out / "extra_max5s.jsonl").read_text(encoding="utf-8").splitlines()]
    have = {lang: sum(r["language"] == lang for r in original) for lang in ("en", "de")}
    more = {lang: sum(r["language"] == lang for r in extra) for lang in ("en", "de")}
    scale = min((have[lang] + more[lang]) / have[lang] for lang in have)  # every language grows by this factor
    allowed = {lang: round(have[lang] * scale) - have[lang] for lang in have}
    kept = []
    for row in extra:  # in file order: sentence by sentence
        if allowed[row["language"]] > 0:
            kept.append(row)
            allowed[row["language"]] -= 1
    rows = original + kept
    (out / "train_plus_balanced.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                   encoding="utf-8")
    counts = {lang: sum(r["language"] == lang for r in kept) for lang in have}
    sentences = {lang: len({r["text"] for r in kept if r["language"] == lang}) for lang in have}
    print(f"balanced: {len(rows)} utterances, extra {counts} ({sentences} sentences), x{scale:.3f} a language")


if __name__ == "__main__":
    if sys.argv[1] == "balance":  # after the first run: ... balance corpus10k/train_max5s.jsonl corpus10k
        balance(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main(*(Path(a) for a in sys.argv[1:5]))
