from pathlib import Path

import pytest

from speechllm.config import Config, ConfigError, load_config, save_config

CONFIGS = sorted(Path("configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    assert isinstance(load_config(path), Config)


def test_paper_config_is_the_papers_layout():
    config = load_config("configs/paper.yaml")
    assert config.model.encoder == "openai/whisper-large-v2"
    assert config.selection.strategy == "lowest" and config.selection.num_tensors == 100
    assert config.model.adaptor_subsample == 4 and config.model.adaptor_layers == 2


def test_overrides_are_typed_and_checked():
    config = load_config(None, ["train.lr_llm=2e-5", "train.max_steps=7", "selection.num_tensors=null",
                                "selection.num_params=1000", "model.bos_token=<|endoftext|>"])
    assert config.train.lr_llm == 2e-5 and config.train.max_steps == 7 and config.selection.num_tensors is None
    assert config.model.bos_token == "<|endoftext|>"
    with pytest.raises(ConfigError, match="unknown key 'train.lr'.*lr_adaptor"):
        load_config(None, ["train.lr=1"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(None, ["train.max_steps=many"])
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(None, ["selection.strategy=best"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["train.max_steps"])


def test_round_trip_and_bad_file(tmp_path):
    config = load_config(None, ["train.max_steps=3"])
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config
    (tmp_path / "bad.yaml").write_text("train: [1, 2]\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_none_is_a_strategy_name_and_null_for_numbers():
    config = load_config(None, ["selection.strategy=none", "selection.num_tensors=None", "model.tokenizer=null"])
    assert config.selection.strategy == "none" and config.selection.num_tensors is None
    assert config.model.tokenizer is None


@pytest.mark.parametrize("override, words", [
    ("train.batch_size=0", "train.batch_size must be at least 1, got 0"),
    ("train.log_every=0", "train.log_every must be at least 1"),
    ("train.lr_llm=-1e-5", "train.lr_llm must be at least 0"),
    ("decode.tokens_per_second=0", "decode.tokens_per_second must be above 0"),
    ("model.adaptor_dropout=1", "model.adaptor_dropout must be at least 0 and below 1"),
    ("train.min_lr_ratio=2", r"train.min_lr_ratio must be in \[0, 1\]"),
    ("train.lr_adaptor=.nan", "train.lr_adaptor must be in|must be at least 0"),
    ("selection.num_tensors=0", "selection.num_tensors must be at least 1"),
])
def test_numbers_out_of_range_are_refused_with_the_range(override, words):
    with pytest.raises(ConfigError, match=words):
        load_config(None, [override])


def test_every_shipped_config_is_in_range():
    for path in Path("configs").glob("*.yaml"):
        load_config(path)
    assert load_config(None, ["selection.num_params=null", "train.max_steps=0"]).train.max_steps == 0


def test_unreadable_values_and_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML; quote it"):
        load_config(None, ["train.lr_llm=["])
    (tmp_path / "audio.yaml").write_bytes(b"RIFF\x80\x81\x00binary")
    with pytest.raises(ConfigError, match="not a valid YAML text file"):
        load_config(tmp_path / "audio.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


@pytest.mark.parametrize("overrides, words", [
    (["model.compression=none", "train.ctc_weight=0", "train.byte_ctc_weight=1"], "train.byte_ctc_weight"),
    (["model.compression=soft", "train.ctc_only_steps=0", "train.freeze_adaptor_in_joint=true"],
     "train.ctc_only_steps > 0, or train.init_adaptor_only"),
    (["model.compression=soft", "train.ctc_only_steps=5", "train.freeze_adaptor_in_joint=true",
      "selection.strategy=none"], "choose a strategy"),
])
def test_contradicting_settings_are_refused_when_the_config_loads(overrides, words):
    # each setting is valid alone; together they are refused before any data or model loads
    with pytest.raises(ConfigError, match=words):
        load_config(None, overrides)
    load_config(None, overrides[:-1])  # without the last one the same settings load
