import pytest
import torch

from speechllm.config import load_config
from speechllm.model.checkpoint import CheckpointError, find_checkpoint, load_checkpoint, save_checkpoint


def test_round_trip_and_replacement(tmp_path):
    config = load_config(None, ["train.max_steps=5"])
    weights = {"adaptor.w": torch.randn(3, 4), "llm.layer.weight": torch.randn(2, 2)}
    save_checkpoint(tmp_path, weights, config, {"llm_tensors": ["layer.weight"]}, {"step": 3})
    loaded, loaded_config, selection, state = load_checkpoint(tmp_path, with_state=True)
    assert loaded_config == config and selection == {"llm_tensors": ["layer.weight"]} and state["step"] == 3
    assert all(torch.equal(loaded[k], weights[k]) for k in weights)
    save_checkpoint(tmp_path, {"adaptor.w": torch.zeros(1)}, config, {"llm_tensors": []}, {"step": 4})
    assert load_checkpoint(tmp_path, with_state=True)[3]["step"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no temporary folders left


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_complete"])
def test_damaged_checkpoint_is_refused(tmp_path, damage):
    save_checkpoint(tmp_path, {"adaptor.w": torch.randn(64, 64)}, load_config(), {"llm_tensors": []}, {"step": 1})
    folder = find_checkpoint(tmp_path)
    weights = folder / "trainable.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-5] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        (folder / "complete.json").unlink()
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)


def test_missing_checkpoint_says_what_to_pass(tmp_path):
    with pytest.raises(CheckpointError, match="speechllm train --output"):
        find_checkpoint(tmp_path)


def test_a_crash_during_a_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    import speechllm.model.checkpoint as checkpoint

    config = load_config()
    good = {"adaptor.w": torch.randn(8, 8)}
    save_checkpoint(tmp_path, good, config, {"llm_tensors": []}, {"step": 1})

    def dies_half_way(tensors, path):
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(checkpoint, "save_file", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, {"adaptor.w": torch.zeros(8, 8)}, config, {"llm_tensors": []}, {"step": 2})
    weights, _, _, state = load_checkpoint(tmp_path, with_state=True)
    assert state["step"] == 1 and torch.equal(weights["adaptor.w"], good["adaptor.w"])
