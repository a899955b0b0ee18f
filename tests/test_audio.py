import json

import numpy as np
import pytest
import soundfile
import torch

from speechllm.data.audio import AudioError, LogMel, load_audio, load_utterance, silence_value
from tests.conftest import tone


@pytest.mark.parametrize("rate, channels, subtype, ext", [
    (16_000, 1, "PCM_16", "wav"), (8_000, 1, "PCM_16", "wav"), (44_100, 2, "PCM_24", "wav"),
    (48_000, 2, "PCM_16", "flac"), (22_050, 1, "VORBIS", "ogg"),
])
def test_any_rate_channels_and_format_become_16k_mono(tmp_path, rate, channels, subtype, ext):
    seconds = 1.25
    signal = tone([440.0], seconds, rate)
    data = np.stack([signal] * channels, axis=1) if channels > 1 else signal
    path = tmp_path / f"x.{ext}"
    soundfile.write(path, data, rate, subtype=subtype)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - seconds * 16_000) <= 16
    # the 440 Hz tone survives resampling and mixing
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16_000 / len(out) - 440) < 5


def test_bad_audio_is_a_clear_error(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00not really audio")
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(tmp_path / "junk.wav", where="m.jsonl:3")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16_000)
    with pytest.raises(AudioError, match="zero-length"):
        load_audio(tmp_path / "empty.wav")
    bad = tone([300.0], 0.5)
    bad[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", bad, 16_000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_truncated_file_is_an_error_or_decodes_what_is_there(tmp_path):
    path = tmp_path / "t.flac"
    soundfile.write(path, tone([300.0], 2.0), 16_000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    try:
        out = load_audio(path)
    except AudioError as error:
        assert str(path) in str(error)
    else:
        assert len(out) < 2 * 16_000


def test_log_mel_matches_whisper_definition():
    audio = tone([200.0, 1000.0], 2.0)
    features = LogMel(80)(audio)
    assert features.shape == (80, 200)
    assert LogMel(128)(audio).shape == (128, 200)
    assert torch.isclose(silence_value(features), features.max() - 2.0)


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_a_segment_decodes_to_the_samples_of_the_cut_out_file(tmp_path, rate):
    from speechllm.data.manifest import read_manifest

    rng = np.random.default_rng(0)
    long = (0.2 * rng.standard_normal(3 * rate)).astype(np.float32)
    soundfile.write(tmp_path / "long.flac", long, rate)
    start, stop = int(0.75 * rate), int(2.25 * rate)
    soundfile.write(tmp_path / "cut.flac", long[start:stop], rate)
    manifest = tmp_path / "m.jsonl"
    lines = [{"audio": "long.flac", "text": "a", "offset": start / rate, "duration": (stop - start) / rate},
             {"audio": "long.flac", "text": "b", "offset": start / rate},
             {"audio": "cut.flac", "text": "c", "duration": 99.0}]  # no offset: the whole file, duration unused
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    segment, to_end, cut = read_manifest(manifest)
    assert np.array_equal(load_utterance(segment), load_audio(tmp_path / "cut.flac"))
    assert np.array_equal(load_utterance(to_end), load_audio(tmp_path / "long.flac", offset=start / rate))
    assert len(load_utterance(to_end)) == pytest.approx(2.25 * 16_000, abs=2)  # to the end of the file
    if rate == 16_000:
        assert np.array_equal(load_utterance(to_end), load_audio(tmp_path / "long.flac")[start:])
    assert np.array_equal(load_utterance(cut), load_audio(tmp_path / "cut.flac"))


def test_a_segment_outside_its_file_is_a_clear_error(tmp_path):
    soundfile.write(tmp_path / "x.wav", tone([300.0], 1.0), 16_000)
    with pytest.raises(AudioError, match=r"m.jsonl:4: .*starts at 1.500 s, at or after the end .*1.000 s") as caught:
        load_audio(tmp_path / "x.wav", "m.jsonl:4", offset=1.5, duration=0.2)
    assert caught.value.kind == "bad_segment"
    with pytest.raises(AudioError, match=r"ends at 1.500 s, after the end of the file \(1.000 s\)"):
        load_audio(tmp_path / "x.wav", offset=0.5, duration=1.0)
    assert len(load_audio(tmp_path / "x.wav", offset=0.5, duration=0.53)) == 8000  # rounded end times are cut
