"""Every kind of bad input is either handled correctly or reported with the manifest, the line and the fix."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from speechllm.data.audio import LogMel, load_audio
from speechllm.data.manifest import ManifestError
from speechllm.data.validate import check_manifest
from speechllm.model.encoder import AudioEncoder, frames_to_encoder_length
from tests.conftest import make_tokenizer, tone


def manifest_of(folder: Path, *lines: dict | bytes) -> Path:
    """A manifest with one line per item (dicts as JSON, bytes as they are) in `folder`."""
    path = folder / "m.jsonl"
    path.write_bytes(b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines))
    return path


def reported(path: Path, line: int, kind: str, *fix: str, **check) -> ManifestError:
    """The one problem `check_manifest` finds on `line`, checked to name the file, the line, the kind and the fix."""
    result = check_manifest(path, **check)
    problems = [p for p in result.problems if p.kind != "empty"]
    assert len(problems) == 1, [str(p) for p in result.problems]
    problem = problems[0]
    assert (problem.path, problem.line, problem.kind) == (path, line, kind)
    assert str(problem).startswith(f"{path}:{line}: ")
    for words in fix:
        assert words in problem.reason, problem.reason
    return problem


def good_line(folder: Path, name: str = "ok.wav") -> dict:
    soundfile.write(folder / name, tone([300.0], 0.5), 16_000)
    return {"audio": name, "text": "fine"}


def test_missing_audio_file(tmp_path):
    path = manifest_of(
        tmp_path,
        good_line(tmp_path),
        {"audio": "clips/gone.wav", "text": "x"},
        {"audio": str(tmp_path / "gone.flac"), "text": "x"},
    )
    result = check_manifest(path)
    assert [(p.line, p.kind) for p in result.problems] == [(2, "missing_file"), (3, "missing_file")]
    assert str(tmp_path / "clips" / "gone.wav") in result.problems[0].reason
    assert "relative to the manifest's folder" in result.problems[0].reason
    assert "relative" not in result.problems[1].reason  # an absolute path needs no hint


@pytest.mark.parametrize("damage", ["junk", "cut_header", "cut_flac"])
def test_unreadable_or_truncated_file(tmp_path, damage):
    audio = tmp_path / ("a.flac" if damage == "cut_flac" else "a.wav")
    soundfile.write(audio, tone([300.0], 1.0), 16_000)
    data = audio.read_bytes()
    audio.write_bytes(
        {
            "junk": b"RIFF\x00\x00not really audio",
            "cut_header": data[:20],
            "cut_flac": data[: len(data) // 2],
        }[damage]
    )
    path = manifest_of(tmp_path, {"audio": audio.name, "text": "x"})
    problem = reported(path, 1, "unreadable", "cannot decode audio", "is the file complete")
    assert str(audio) in problem.reason


def test_wav_truncated_in_its_data_loads_what_is_there(tmp_path):
    audio = tmp_path / "a.wav"
    soundfile.write(audio, tone([300.0], 1.0), 16_000)
    audio.write_bytes(audio.read_bytes()[:-8_000])  # 16-bit: 4000 samples gone
    result = check_manifest(manifest_of(tmp_path, {"audio": "a.wav", "text": "x"}))
    assert not result.problems
    assert result.durations == [pytest.approx(0.75)]


@pytest.mark.parametrize("cut_to_header", [False, True])
def test_zero_length_audio(tmp_path, cut_to_header):
    audio = tmp_path / "a.wav"
    if cut_to_header:  # a wav header with its data gone
        soundfile.write(audio, tone([300.0], 1.0), 16_000)
        audio.write_bytes(audio.read_bytes()[:44])
    else:
        soundfile.write(audio, np.zeros(0, dtype=np.float32), 16_000)
    path = manifest_of(tmp_path, good_line(tmp_path), {"audio": "a.wav", "text": "x"})
    reported(path, 2, "empty_audio", "zero-length", "remove the line or replace the file")


def test_too_short_audio(tmp_path):
    soundfile.write(tmp_path / "a.wav", tone([300.0], 0.01), 16_000)
    path = manifest_of(tmp_path, {"audio": "a.wav", "text": "x"})
    reported(path, 1, "too_short", "10 ms", "20 ms minimum", "remove the line")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_samples(tmp_path, value):
    samples = tone([300.0], 0.5)
    samples[1000] = value
    soundfile.write(tmp_path / "a.wav", samples, 16_000, subtype="FLOAT")
    path = manifest_of(tmp_path, {"audio": "a.wav", "text": "x"})
    reported(path, 1, "non_finite", "NaN or infinite", "re-export the file")


@pytest.mark.parametrize(
    "rate, channels, subtype",
    [
        (8_000, 1, "PCM_16"),
        (44_100, 1, "PCM_16"),
        (16_000, 2, "PCM_16"),
        (16_000, 1, "PCM_24"),
        (44_100, 2, "PCM_24"),
    ],
)
def test_other_rates_channels_and_bit_depths_load(tmp_path, rate, channels, subtype):
    signal = tone([440.0], 1.0, rate)
    soundfile.write(tmp_path / "a.wav", np.stack([signal] * channels, axis=1), rate, subtype=subtype)
    assert soundfile.info(str(tmp_path / "a.wav")).channels == channels
    result = check_manifest(manifest_of(tmp_path, {"audio": "a.wav", "text": "x"}))
    assert not result.problems
    assert result.durations == [pytest.approx(1.0, abs=1e-3)]
    features = LogMel(80)(load_audio(tmp_path / "a.wav"))
    assert features.shape == (80, 100) and torch.isfinite(features).all()


@pytest.mark.parametrize("mode", ["trim", "pad30"])
def test_audio_over_30_seconds_is_encoded_whole(tmp_path, mode):
    seconds = 35
    soundfile.write(tmp_path / "long.flac", tone([300.0], seconds), 16_000)
    result = check_manifest(manifest_of(tmp_path, {"audio": "long.flac", "text": "a long one"}))
    assert not result.problems and result.durations == [pytest.approx(seconds)]
    features = LogMel(80)(load_audio(tmp_path / "long.flac"))  # M, T
    assert features.shape == (80, seconds * 100)
    torch.manual_seed(0)
    whisper = WhisperEncoder(
        WhisperConfig(
            num_mel_bins=80, d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64
        )
    )
    encoder = AudioEncoder(whisper, mode=mode)
    embeddings, lengths = encoder(features[None], torch.tensor([features.shape[-1]]))  # 1, M, T -> 1, S, D
    assert embeddings.shape == (1, seconds * 50, 32)
    assert lengths.tolist() == [seconds * 50] == [frames_to_encoder_length(features.shape[-1])]
    assert torch.isfinite(embeddings).all()
    assert embeddings[0, 1500:].abs().sum() > 0  # the last 5 s are encoded, not padding


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_transcript(tmp_path, text):
    path = manifest_of(tmp_path, good_line(tmp_path), {"audio": "ok.wav", "text": text})
    reported(path, 2, "empty_text", "empty transcript", "remove the line or give its transcript")


def test_transcript_longer_than_the_token_limit(tmp_path):
    line = good_line(tmp_path)
    path = manifest_of(tmp_path, {**line, "text": "x" * 10}, {**line, "id": "long", "text": "hello world"})
    problem = reported(
        path,
        2,
        "text_too_long",
        "11 tokens",
        "data.max_text_tokens=10",
        "raise data.max_text_tokens or split the utterance",
        tokenizer=make_tokenizer(),
        max_text_tokens=10,
    )
    assert problem.line == 2  # exactly at the limit (line 1) is fine


@pytest.mark.parametrize(
    "record, kind, words",
    [
        ({"text": "x"}, "missing_field", "'audio'"),
        ({"audio": "ok.wav"}, "missing_field", "'text'"),
        ({"audio": 5, "text": "x"}, "field_type", "'audio' must be a string"),
        ({"audio": "ok.wav", "text": None}, "field_type", "'text' must be a string"),
        ({"audio": "ok.wav", "text": "x", "language": "english"}, "field_type", "two-letter ISO 639-1 code"),
        ({"audio": "ok.wav", "text": "x", "duration": "2s"}, "field_type", "positive number of seconds"),
        ({"audio": "ok.wav", "text": "x", "duration": -1.0}, "field_type", "positive number of seconds"),
        ({"audio": "ok.wav", "text": "x", "id": 7}, "field_type", "'id' must be a non-empty string"),
        (["ok.wav", "x"], "json", "expected a JSON object"),
    ],
)
def test_missing_or_wrongly_typed_fields(tmp_path, record, kind, words):
    line = json.dumps(record).encode()
    path = manifest_of(tmp_path, good_line(tmp_path), line)
    reported(path, 2, kind, words)


def test_broken_json(tmp_path):
    path = manifest_of(tmp_path, good_line(tmp_path), b'{"audio": "ok.wav", "text": "x"')
    reported(path, 2, "json", "not valid JSON", "each line must be one object")


def test_invalid_utf8(tmp_path):
    path = manifest_of(
        tmp_path,
        good_line(tmp_path),
        b'{"audio": "ok.wav", "text": "gr\xfc\xdf dich"}',
        {"audio": "ok.wav", "text": "grüß dich", "id": "utf8"},
    )
    reported(path, 2, "encoding", "not valid UTF-8", "save the manifest as UTF-8")
    assert [u.text for u in check_manifest(path).utterances] == ["fine", "grüß dich"]


def test_duplicate_ids(tmp_path):
    line = {**good_line(tmp_path), "id": "same"}
    path = manifest_of(tmp_path, line, {"audio": "ok.wav", "text": "other", "id": "other"}, line)
    reported(path, 3, "duplicate_id", "duplicate id 'same'", "first on line 1", "ids must be unique")
    assert [u.id for u in check_manifest(path).utterances] == ["same", "other"]


def test_manifest_path_is_a_folder_or_missing(tmp_path):
    result = check_manifest(tmp_path)
    assert [(p.path, p.line, p.kind) for p in result.problems] == [(tmp_path, 0, "not_a_file")]
    assert "pass the .jsonl manifest file inside it" in str(result.problems[0])
    assert not result.utterances
    result = check_manifest(tmp_path / "nope.jsonl")
    assert [(p.line, p.kind) for p in result.problems] == [(0, "not_a_file")]
    assert "does not exist" in str(result.problems[0])
