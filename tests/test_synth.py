"""espeak-ng synthesis and the synthetic corpus builder (needs the pip package espeakng-loader, no network)."""

import json
import logging
import re

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader", reason="speech synthesis needs pip install espeakng-loader")

from speechllm.data import synth  # noqa: E402

FIELDS = {"id", "audio", "text", "language", "duration", "voice"}


def read(manifest):
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def test_synthesize_gives_nonsilent_float32_16k_audio():
    audio = synth.synthesize("The quick brown fox jumps over the lazy dog.", voice="en-us")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.0 < audio.size / synth.SAMPLE_RATE < 6.0
    assert 0.05 < np.abs(audio).max() <= 1.0
    german = synth.synthesize("Wer Unmögliches will, muß Mögliches tun.", voice="de+f4", pitch=60)
    assert np.abs(german).max() > 0.05


def test_duration_grows_with_text_and_falls_with_rate():
    short = synth.synthesize("Good morning.", rate=160).size
    long = synth.synthesize(
        "Good morning, and welcome to the longest sentence of this test file.", rate=160
    ).size
    fast = synth.synthesize(
        "Good morning, and welcome to the longest sentence of this test file.", rate=260
    ).size
    assert short < long and fast < 0.85 * long


@pytest.mark.parametrize("voice", ["xx-nonexistent", "en-us+nonexistent"])
def test_unknown_voice_is_an_error(voice):
    with pytest.raises(ValueError, match="voice"):
        synth.synthesize("Hello there.", voice=voice)


@pytest.mark.parametrize("language", ["en", "de"])
def test_bundled_sentences_are_clean(language):
    sentences = synth.load_sentences(language)
    assert len(sentences) >= 2500 and len(set(sentences)) == len(sentences)
    for sentence in sentences:
        assert 3 <= len(sentence.split()) <= 20 and not re.search(r"[0-9/@_<>=]|http", sentence), sentence
    with pytest.raises(ValueError, match="available"):
        synth.load_sentences("xx")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    synth.synthesize("Engine history that must not leak into the corpus.", voice="en-us+f2")
    return {
        name: (
            root / name,
            synth.build_corpus(
                root / name, utterances_per_language=12, seed=seed, workers=workers, show_progress=False
            ),
        )
        for name, seed, workers in (("a", 0, 2), ("b", 0, 1), ("c", 1, 2))
    }


def test_build_corpus_writes_audio_and_manifests(corpora):
    out_dir, manifests = corpora["a"]
    assert set(manifests) == {"train", "dev", "test", "test_unseen_voices"}
    rows = {split: read(path) for split, path in manifests.items()}
    assert [len(rows[split]) for split in ("train", "dev", "test", "test_unseen_voices")] == [24, 2, 2, 2]
    for split_rows in rows.values():
        assert {row["language"] for row in split_rows} == {"en", "de"}
        for row in split_rows:
            assert set(row) == FIELDS and row["audio"].startswith(f"audio/{row['language']}/")
            info = sf.info(out_dir / row["audio"])
            assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"
            assert abs(info.frames / 16000 - row["duration"]) < 1e-3
    texts = {split: {row["text"] for row in rows[split]} for split in ("train", "dev", "test")}
    assert (
        not texts["train"] & texts["dev"]
        and not texts["train"] & texts["test"]
        and not texts["dev"] & texts["test"]
    )
    assert [row["text"] for row in rows["test_unseen_voices"]] == [row["text"] for row in rows["test"]]
    seen = {row["voice"] for split in ("train", "dev", "test") for row in rows[split]}
    assert not seen & {row["voice"] for row in rows["test_unseen_voices"]}
    assert not set(synth.voices_for("en")) & set(synth.voices_for("en", unseen=True))


def test_same_seed_is_identical_whatever_the_workers_and_other_seed_differs(corpora):
    (dir_a, a), (dir_b, b), (_, c) = corpora["a"], corpora["b"], corpora["c"]
    for split in a:
        assert a[split].read_bytes() == b[split].read_bytes()
    for row in read(a["train"]) + read(a["test_unseen_voices"]):
        assert (dir_a / row["audio"]).read_bytes() == (dir_b / row["audio"]).read_bytes(), row
    assert a["train"].read_bytes() != c["train"].read_bytes()


def test_noise_reaches_the_requested_snr(tmp_path):
    kwargs = dict(languages=("de",), utterances_per_language=2, workers=1, show_progress=False)
    clean = read(synth.build_corpus(tmp_path / "clean", **kwargs)["train"])
    synth.build_corpus(tmp_path / "noisy", noise_snr_db=10.0, **kwargs)
    speech, _ = sf.read(tmp_path / "clean" / clean[0]["audio"])
    noisy, _ = sf.read(tmp_path / "noisy" / clean[0]["audio"])
    snr = 10 * np.log10(np.mean(speech**2) / np.mean((noisy - speech) ** 2))
    assert 9.0 < snr < 11.0


def test_sentences_spoken_as_silence_are_skipped(tmp_path, monkeypatch, caplog):
    sentences = [
        "Good morning to you.",
        "...",
        "See you later.",
        "It is a fine day.",
        "...",
        "Time to go home.",
    ]
    monkeypatch.setattr(synth, "load_sentences", lambda language: sentences)
    with caplog.at_level(logging.WARNING, logger="speechllm.data.synth"):
        manifests = synth.build_corpus(
            tmp_path, languages=("en",), utterances_per_language=6, workers=1, show_progress=False
        )
    texts = [row["text"] for path in manifests.values() for row in read(path)]
    assert "..." not in texts and len(texts) >= 3 and "empty audio" in caplog.text
