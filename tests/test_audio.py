import numpy as np
import pytest
import soundfile
import torch

from speechllm.data.audio import AudioError, LogMel, load_audio, silence_value
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
