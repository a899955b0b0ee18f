import torch
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from speechllm.model.adaptor import Adaptor
from speechllm.model.encoder import AudioEncoder, frames_to_encoder_length


def make_encoder(mode: str = "trim", layer: int = 0) -> AudioEncoder:
    torch.manual_seed(0)
    config = WhisperConfig(num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=2,
                           encoder_ffn_dim=64, max_source_positions=1500)
    return AudioEncoder(WhisperEncoder(config), mode, layer)


def test_trim_batch_equals_each_item_alone():
    encoder = make_encoder()
    features = torch.randn(3, 80, 200)
    frames = torch.tensor([200, 77, 150])
    out, lengths = encoder(features, frames)
    assert lengths.tolist() == [100, 39, 75]
    for i in range(3):
        alone, n = encoder(features[i : i + 1, :, : frames[i]], frames[i : i + 1])
        torch.testing.assert_close(out[i, : lengths[i]], alone[0], atol=1e-5, rtol=1e-5)
        assert torch.all(out[i, lengths[i] :] == 0)


def test_trim_on_a_full_window_equals_transformers_forward():
    encoder = make_encoder()
    features = torch.randn(1, 80, 3000)
    out, lengths = encoder(features, torch.tensor([3000]))
    reference = encoder.whisper(input_features=features).last_hidden_state
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-4)


def test_a_middle_layer_gives_the_states_the_next_layer_reads_in_both_modes(tmp_path):
    import pytest

    from speechllm.errors import ConfigError
    from speechllm.model.feature_cache import FeatureCache

    features, frames = torch.randn(2, 80, 3000), torch.tensor([3000, 1200])
    for mode in ("trim", "pad30"):
        full, middle = make_encoder(mode), make_encoder(mode, layer=1)
        seen: list[torch.Tensor] = []
        hook = full.whisper.layers[1].register_forward_pre_hook(lambda module, args, seen=seen: seen.append(args[0]))
        out, lengths = full(features, frames)
        hook.remove()
        states, middle_lengths = middle(features, frames)
        assert torch.equal(lengths, middle_lengths)
        for b, n in enumerate(lengths.tolist()):  # what layer 2 read, on each item's real frames
            torch.testing.assert_close(states[b, :n], seen[0][b, :n], atol=1e-5, rtol=1e-4)
        assert not torch.allclose(states[0], out[0], atol=1e-2)
    last = make_encoder(layer=2)  # the last layer is the output: after the final LayerNorm, cached as the output
    torch.testing.assert_close(last(features, frames)[0], make_encoder()(features, frames)[0])
    assert FeatureCache(tmp_path, last).folder == FeatureCache(tmp_path, make_encoder()).folder
    assert FeatureCache(tmp_path, make_encoder(layer=1)).folder != FeatureCache(tmp_path, make_encoder()).folder
    with pytest.raises(ConfigError, match="encoder_layer=3"):
        make_encoder(layer=3)


def test_pad30_pads_with_whispers_silence_and_keeps_real_frames():
    encoder = make_encoder("pad30")
    features = torch.randn(1, 80, 400)
    out, lengths = encoder(features, torch.tensor([400]))
    assert out.shape == (1, 200, 32) and lengths.tolist() == [200]
    padded = torch.cat([features, torch.full((1, 80, 2600), float(features.max()) - 2.0)], dim=-1)
    reference = encoder.whisper(input_features=padded).last_hidden_state[:, :200]
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-4)


def test_audio_longer_than_30_s_is_windowed_not_truncated():
    for mode in ("trim", "pad30"):
        encoder = make_encoder(mode)
        features = torch.randn(2, 80, 7100)  # 71 s and 12 s
        out, lengths = encoder(features, torch.tensor([7100, 1200]))
        assert lengths.tolist() == [frames_to_encoder_length(7100), 600] == [3550, 600]
        first_window, _ = encoder(features[:1, :, :3000], torch.tensor([3000]))
        torch.testing.assert_close(out[0, :1500], first_window[0], atol=1e-5, rtol=1e-4)


def test_encoder_is_frozen_and_stays_in_eval_mode():
    encoder = make_encoder()
    encoder.train()
    assert not encoder.whisper.training
    assert not any(p.requires_grad for p in encoder.parameters())


def test_adaptor_subsamples_by_four_and_ignores_padding():
    torch.manual_seed(0)
    adaptor = Adaptor(32, 48, subsample=4, layers=2, heads=4, dropout=0.0).eval()
    x = torch.randn(2, 10, 32)
    lengths = torch.tensor([10, 6])
    x[1, 6:] = 0
    out, out_lengths = adaptor(x, lengths)
    assert out.shape == (2, 3, 48) and out_lengths.tolist() == [3, 2]
    alone, _ = adaptor(x[1:, :6], lengths[1:])
    torch.testing.assert_close(out[1, :2], alone[0], atol=1e-5, rtol=1e-5)
    assert torch.all(out[1, 2:] == 0)
    # frame concatenation: output frame j sees input frames 4j..4j+3 only through the projection
    y = x.clone()
    y[0, 0] += 1.0
    changed, _ = adaptor(y, lengths)
    assert not torch.allclose(changed[0], out[0])


def test_trained_top_layers_start_as_the_frozen_encoders_output_window_by_window():
    import pytest

    from speechllm.errors import ConfigError
    from speechllm.model.encoder import EncoderTop

    full = make_encoder()
    below = AudioEncoder(full.whisper, "trim", layer=1)  # stops below the last of 2 layers
    top = EncoderTop(full.whisper, 1)
    assert top.layers[0] is not full.whisper.layers[1]  # a copy: training it leaves the frozen encoder as it was
    features = torch.randn(2, 80, 7100)  # 71 s (three 30 s windows) and 12 s, padded
    frames = torch.tensor([7100, 1200])
    states, lengths = below(features, frames)
    out = top(states, lengths)
    expected, _ = full(features, frames)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)  # each window attends within itself
    assert torch.all(out[1, 600:] == 0)
    with pytest.raises(ConfigError, match="encoder_train_layers=2"):
        EncoderTop(full.whisper, 2)  # the frozen encoder must keep at least one layer


def test_a_finished_cache_holds_the_frozen_top_layers_output_filled_in_the_same_pass(tmp_path):
    import numpy as np
    import soundfile as sf

    from speechllm.data.audio import LogMel, load_utterance
    from speechllm.data.manifest import Utterance
    from speechllm.model.encoder import EncoderTop
    from speechllm.model.feature_cache import FeatureCache

    full = make_encoder()
    below = AudioEncoder(full.whisper, "trim", layer=1)
    features, frames = torch.randn(2, 80, 7100), torch.tensor([7100, 1200])
    states, lengths = below(features, frames)
    finished = below.finish(states, lengths)
    torch.testing.assert_close(finished, full(features, frames)[0], atol=1e-5, rtol=1e-4)  # window by window
    torch.testing.assert_close(finished, EncoderTop(full.whisper, 1)(states, lengths))  # the untrained copies' output

    rng = np.random.default_rng(0)
    utterances = []
    for i, seconds in enumerate((1.0, 2.5)):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, rng.standard_normal(int(16000 * seconds)).astype(np.float32) * 0.1, 16000)
        utterances.append(Utterance(id=f"u{i}", audio=path, text="x", language="en"))
    cache, top = FeatureCache(tmp_path / "c", below), FeatureCache(tmp_path / "c", below, finished=True)
    assert len({cache.folder, top.folder, FeatureCache(tmp_path / "c", full).folder}) == 3
    calls = []
    below.register_forward_hook(lambda *args: calls.append(1))
    keys = cache.fill(utterances, LogMel(), batch_size=2, finished=top)
    assert len(calls) == 1  # one pass of the frozen layers for both caches
    before = len(calls)
    assert cache.fill(utterances, LogMel(), finished=top) == keys and len(calls) == before  # nothing left to encode
    mel = [LogMel()(load_utterance(u)) for u in utterances]
    for key, m in zip(keys, mel):
        one_states, n = below(m[None], torch.tensor([m.shape[-1]]))
        torch.testing.assert_close(cache.load(key), one_states[0].T.half().float(), atol=2e-3, rtol=2e-3)
        torch.testing.assert_close(top.load(key), full(m[None], torch.tensor([m.shape[-1]]))[0][0].T.half().float(),
                                   atol=2e-3, rtol=2e-3)
