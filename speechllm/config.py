"""One typed configuration for every command.

YAML files in `configs/` are instances of `Config`; the command line adds dotted overrides such as
`train.lr_adaptor=3e-4`. Unknown keys and wrongly typed values are errors that name the key and the fix.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from speechllm.errors import ConfigError


def cache_dir() -> Path:
    """Converted bundled models, kappa caches and encoder features: $SPEECHLLM_CACHE or ~/.cache/speechllm."""
    return Path(os.environ.get("SPEECHLLM_CACHE", Path.home() / ".cache" / "speechllm"))


# Which LLM tensors train (selection.strategy), the one list of them:
STRATEGIES = (
    "lowest",  # the num_tensors (or num_params) lowest-kappa tensors: KappaTune, the paper
    "highest",  # the highest-kappa ones: the paper's inverse control
    "random",  # a seeded random choice under the same budget
    "none",  # no LLM tensor: the adaptor alone
    "all",  # every LLM tensor: full fine-tuning
    "lora",  # LoRA adapters on every eligible matrix (rank from selection.lora_rank or num_params)
    "kappa-lora",  # LoRA adapters on the num_tensors lowest-kappa matrices
)


@dataclass
class ModelConfig:
    # Whisper checkpoint for the frozen encoder: hub id, local folder, or bundled:whisper-base / bundled:whisper-tiny.en
    encoder: str = "openai/whisper-large-v2"
    # Causal LM: hub id, local folder, or bundled:smollm2-135m
    llm: str = "meta-llama/Llama-3.1-8B-Instruct"
    # Tokenizer source; None = the LLM's own
    tokenizer: str | None = None
    # "trim": run the encoder on the real length with masks; "pad30": pad every input to 30 s (the paper's way)
    encoder_mode: str = "trim"
    # Which encoder states the adaptor reads: 0 = the encoder's output (after its last layer and final LayerNorm: the
    # paper); k = the states after layer k (a middle layer may keep more of the sound and less of Whisper's own
    # decoding). The feature cache keeps each layer apart. Layer 4 of Whisper base's 6 trailed the output by 11-19 dev
    # points (docs/recognition.md section 14; its raw states have one channel ~40x the others' spread)
    encoder_layer: int = 0
    # Whisper's last n layers and final LayerNorm trained (at train.lr_encoder) as the adaptor's first stage, on the
    # frozen encoder's states below them (cached). 0 = the whole encoder frozen (the paper). Whisper base's top layer,
    # trained for 600 CTC-only steps from the shipped adaptor, took 1.40 dev300 points off the whole decoder against
    # the same steps frozen (German 2.40), at ~2.2x a CTC-only step's time (docs/recognition.md sections 34, 36)
    encoder_train_layers: int = 0
    # Token placed between the audio and the text; None = the tokenizer's BOS token
    bos_token: str | None = None
    # Token that ends every transcript; None = the tokenizer's EOS token
    eos_token: str | None = None
    # Text around the audio: "{audio}" marks where the adapted audio goes, "{bos}" stands for the BOS token
    # (model.bos_token). The paper's layout is "{audio}{bos}"; an instruction can surround the audio, e.g.
    # "<|im_start|>user\nRepeat: {audio}<|im_end|>\n<|im_start|>assistant\n". Loss is on the transcript only.
    prompt: str = "{audio}{bos}"
    # Adaptor: frames concatenated per output frame (the paper: 4)
    adaptor_subsample: int = 4
    # Adaptor: number of multi-head attention blocks (the paper: 2)
    adaptor_layers: int = 2
    # Adaptor: attention heads per block
    adaptor_heads: int = 8
    # Adaptor: hidden width of a feed-forward sublayer (pre-norm, GELU) after each attention block; 0 = none (the
    # paper's blocks are attention only, so the adaptor has no per-frame nonlinearity but LayerNorm)
    adaptor_ffn: int = 0
    # Adaptor: output frames made of each attention-block frame by a linear map (1 = none, the paper). 2 gives the
    # CTC head 25 frames a second for dense token rates (German) while attention runs at 12.5; with CTC
    # compression the LLM still reads one vector per token
    adaptor_upsample: int = 1
    # Adaptor: how many attention-block frames (80 ms each) on either side a frame may attend to; 0 = the whole
    # utterance (the paper). A local window keeps the adaptor from recognising a training sentence as a whole; at 6 it
    # changed nothing measurable (docs/recognition.md section 13)
    adaptor_window: int = 0
    # CTC head: hash buckets for class vectors spelled from each token's letters (adaptor.Spelling), added to the
    # token embeddings the head scores against, so rare tokens share what common ones taught; 0 = off (plain tied
    # embeddings). At 16384 level with the plain head to 3,000 steps (docs/recognition.md section 14)
    ctc_spelling: int = 0
    # Adaptor: dropout inside the attention blocks
    adaptor_dropout: float = 0.1
    # SpecAugment-style time masking in training: this fraction of each utterance's encoder frames is zeroed, in
    # spans of model.time_mask_span frames (Whisper: 50 a second), before the adaptor. Regularizes the adaptor
    # against memorising voices and sentences in long CTC phases. 0 = off (the paper has none)
    time_mask: float = 0.0
    time_mask_span: int = 10
    # Tempo augmentation in training: each utterance's encoder states are resampled to between 1 - x and 1 + x times
    # their length (adaptor.time_stretch), so no recording is heard twice at the same rate. 0 = off (the paper has
    # none). At 0.15 level with none at 3,000 and 7,000 steps (docs/recognition.md sections 14 and 15)
    time_stretch: float = 0.0
    # SpecAugment-style channel masking in training: this fraction of each utterance's encoder-state channels is
    # zeroed over the whole utterance (adaptor.channel_mask), so no recording is heard twice with the same features.
    # 0 = off (the paper has none). At 0.2, 2 points behind none at 7,000 steps (docs/recognition.md section 15)
    channel_mask: float = 0.0
    # Dtype of the frozen weights and of the matrix products (autocast): "auto" (bfloat16 on a GPU and on CPUs with
    # avx512_bf16 or AMX, float32 on other CPUs, where bfloat16 is emulated and ~5x slower), "float32", "bfloat16",
    # "float16". The trained tensors (adaptor, selected LLM tensors, LoRA) always keep float32 master values,
    # updated by AdamW in float32 and saved so.
    dtype: str = "auto"
    # Attention kernel for the LLM: "sdpa", "eager", "flash_attention_2"
    attn_implementation: str = "sdpa"
    # What the LLM reads of the adaptor's output. "none": every adaptor frame, 12.5 a second (the paper). "soft" or
    # "frames": CTC compression (model/compression.py): the adaptor's CTC head labels each frame with a token or
    # blank, and the LLM reads one vector per predicted token: its soft token embedding ("soft") or the mean of its
    # adaptor frames ("frames"). Departs from the paper; needs the CTC head trained (train.ctc_only_steps,
    # train.ctc_weight). Measured in docs/recognition.md.
    compression: str = "none"


@dataclass
class SelectionConfig:
    # Which LLM tensors to unfreeze: "lowest" kappa (the paper), "highest", "random", "none" (adaptor only), "all";
    # or LoRA instead of unfreezing: "lora" (every eligible matrix), "kappa-lora" (the num_tensors lowest-kappa ones)
    strategy: str = "lowest"
    # Budget as a number of tensors (the paper: 100); set num_params instead to budget parameters
    num_tensors: int | None = 100
    # Budget as a number of trainable LLM parameters (exclusive with num_tensors)
    num_params: int | None = None
    # Let input embeddings and lm_head compete for selection
    include_embeddings: bool = False
    # A regular expression: only eligible tensors whose name it matches compete (re.search), e.g. "v_proj" to hold
    # the matrix kind fixed when comparing strategies; None: all eligible tensors (the paper)
    only: str | None = None
    # Kappa cache file; None = <cache dir>/kappa/<llm name>.json. A cache of another model is refused.
    kappa_cache: str | None = None
    # Seed for the "random" strategy
    seed: int = 0
    # LoRA rank (lora / kappa-lora); with num_params set, the rank is derived from that budget instead
    lora_rank: int = 16
    # LoRA scaling numerator (scale = alpha / rank)
    lora_alpha: float = 32.0


@dataclass
class DataConfig:
    # Transcripts longer than this many tokens are an error (or skipped with on_error=skip)
    max_text_tokens: int = 256
    # "fail": check every sample before the first step and stop on a bad one; "skip": drop bad samples, count them
    on_error: str = "fail"
    # Batches are formed from utterances of similar duration (less padding, faster)
    bucket_by_duration: bool = True
    # DataLoader worker processes for audio decoding
    num_workers: int = 0
    # Run the frozen encoder once per utterance and keep its output on disk (keyed by the encoder's weights, mode,
    # dtype and the audio file's bytes, so it can never be stale); later epochs and runs skip audio decoding and
    # the encoder. Costs disk: about 100 KB per second of audio for Whisper base, 250 KB for large-v2.
    feature_cache: bool = False
    # Folder of the feature cache; None = <SPEECHLLM_CACHE>/features
    feature_cache_dir: str | None = None


@dataclass
class TrainConfig:
    # Utterances per step per process
    batch_size: int = 8
    # Gradient accumulation steps (global batch = batch_size * grad_accum * processes)
    grad_accum: int = 1
    # Optimizer steps in total
    max_steps: int = 2000
    # Peak learning rate of the adaptor
    lr_adaptor: float = 1e-4
    # Peak learning rate of the selected LLM tensors
    lr_llm: float = 1e-5
    # Peak learning rate of the encoder's trained top layers (model.encoder_train_layers), on the adaptor's schedule
    lr_encoder: float = 1e-4
    # With model.encoder_train_layers: the top layers learn in the last this many CTC-only steps only (their own
    # warm-up and decay), frozen before; in those earlier steps the adaptor reads the frozen encoder's output, cached
    # in the same pass as the states below the top layers, and only the adaptor's cost is paid. 0 = the top layers
    # learn in every step the adaptor does. 600 of 7,600 in one run from nothing: English -2.63 dev300 points against
    # the same run without them (docs/recognition.md section 37)
    encoder_steps: int = 0
    # AdamW weight decay (adaptor and LLM)
    weight_decay: float = 0.0
    # Linear warm-up steps
    warmup_steps: int = 100
    # Decay after warm-up: "cosine", "linear" or "constant"
    schedule: str = "cosine"
    # Final learning rate as a fraction of the peak
    min_lr_ratio: float = 0.1
    # Gradient norm clipping (0 = off)
    grad_clip: float = 1.0
    # Steps between log lines
    log_every: int = 10
    # Steps between dev evaluations (0 = only at the end)
    eval_every: int = 500
    # Dev utterances decoded for the dev WER at each evaluation
    eval_wer_utterances: int = 64
    # Steps between checkpoints (0 = only at the end)
    save_every: int = 500
    # Seed for data order, dropout and initialization
    seed: int = 0
    # Consecutive non-finite steps after which training stops
    max_bad_steps: int = 20
    # Steps at the start during which only the adaptor learns (the selected LLM tensors stay as they are); the
    # LLM's learning-rate schedule starts after them. 0 = the paper's joint training from the first step
    adaptor_only_steps: int = 0
    # Weight of an auxiliary CTC loss on the adaptor output (classes: the LLM's own token embeddings of the
    # training transcripts' tokens, plus a learned blank); 0 = off (the paper has none)
    ctc_weight: float = 0.0
    # Weight of a second auxiliary CTC loss beside the token one (needs train.ctc_weight or model.compression): a
    # small head on the adaptor output spells each transcript in UTF-8 bytes, one byte slot per encoder frame
    # (adaptor.ByteCTCHead). Spelling teaches the adaptor the sounds of rare and unseen words, which the token head
    # (one class per token) cannot; nothing reads it at inference. 0 = off (the paper has none)
    byte_ctc_weight: float = 0.0
    # Steps after which the CTC loss is switched off (0 = it stays on for the whole run)
    ctc_steps: int = 0
    # Steps at the start that train the adaptor with the CTC loss alone (the LLM is not run, so a step costs a
    # fraction of a full one): the adaptor's frames learn to point at the LLM's token embeddings before the LLM
    # reads them. The LLM's learning-rate schedule starts after them. 0 = off (the paper)
    ctc_only_steps: int = 0
    # Utterances per step per process in the CTC-only steps (0 = train.batch_size): a CTC-only step does not run the
    # LLM, and its small matrices use the CPU better in larger batches (on 2 cores, 32 utterances a step are 1.26x
    # the audio per second of 8); the joint steps keep train.batch_size
    ctc_only_batch_size: int = 0
    # Freeze the adaptor (and its CTC heads) once the LLM trains: its learning-rate schedule warms up and decays over
    # the CTC-only steps alone and is 0 from train.ctc_only_steps on, so the joint steps teach only the selected LLM
    # tensors to read what the CTC phase taught (needs train.ctc_only_steps). The joint steps then run the adaptor
    # without autograd and skip its CTC losses (no ctc_loss in their metrics); train.grad_clip clips the LLM tensors'
    # gradients alone. The frozen adaptor keeps its dropout and time masks: they regularize the LLM's tensors (eval mode
    # there is +0.85 dev300 WER points, docs/recognition.md section 25). false = one adaptor schedule over the whole run
    freeze_adaptor_in_joint: bool = False
    # With --init: take only the adaptor (and its CTC heads) from that run, and start the LLM's selected tensors as
    # pretrained: a new joint phase on another run's adaptor. With train.freeze_adaptor_in_joint and no CTC-only
    # steps the adaptor stays frozen throughout. A recipe run with the adaptor frozen in its joint phase (the shipped
    # checkpoint) holds the very adaptor its CTC-only phase ended with, so this restarts its joint phase (the demo)
    init_adaptor_only: bool = False


@dataclass
class DecodeConfig:
    # 1 = greedy; more = beam search (over the joint score when decode.ctc_weight > 0)
    num_beams: int = 1
    # Upper bound on new tokens per second of audio (plus decode.extra_tokens); stops loops
    tokens_per_second: float = 10.0
    # Tokens allowed on top of the duration bound
    extra_tokens: int = 16
    # With CTC compression (model.compression), the transcript's length in tokens against the number of tokens the
    # CTC head heard (its segments): EOS is not allowed before min_tokens_per_segment x segments (not in the
    # LLM-alone beam search; stops early endings), and at most max_tokens_per_segment x segments + 2 tokens are
    # written (stops loops). 0 = off
    min_tokens_per_segment: float = 0.0
    max_tokens_per_segment: float = 0.0
    # Joint CTC / LLM decoding (models with a CTC head): each step takes the LLM's ctc_candidates most likely tokens
    # and scores them by (1 - ctc_weight) x LLM log-probability + ctc_weight x the CTC head's prefix score gain (EOS:
    # its score that the transcript is complete), as ESPnet decodes attention models; greedy, or a beam search with
    # decode.num_beams > 1. 0 = the LLM alone
    ctc_weight: float = 0.0
    ctc_candidates: int = 8
    # Utterances decoded together
    batch_size: int = 8
    # Recordings longer than this are transcribed in pieces cut at their longest pauses (each at most this long),
    # and the pieces' transcripts joined. Keep it near the longest training utterance: a model trained on short
    # utterances stops early on long ones. Every piece, a short recording too, is cut to its speech with 0.05 s of
    # pause kept either side (data.chunking.EDGE_SECONDS): silence the model never trained on makes it invent
    # words. 0 = never split nor cut.
    chunk_seconds: float = 20.0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def ctc_head(self) -> bool:
        """Whether the adaptor has a CTC head: CTC compression cuts segments with it, train.ctc_weight trains it."""
        return self.model.compression != "none" or self.train.ctc_weight > 0


_CHOICES = {
    "model.encoder_mode": ("trim", "pad30"),
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "model.compression": ("none", "soft", "frames"),
    "selection.strategy": STRATEGIES,
    "data.on_error": ("fail", "skip"),
    "train.schedule": ("cosine", "linear", "constant"),
}
# Allowed ranges of numeric settings: at least 1, at least 0, above 0, and two fractions. Null budgets pass.
_AT_LEAST_1 = ("model.adaptor_subsample model.adaptor_upsample model.adaptor_heads selection.num_tensors selection.num_params "
               "selection.lora_rank data.max_text_tokens train.batch_size train.grad_accum train.log_every "
               "train.max_bad_steps decode.num_beams decode.batch_size model.time_mask_span decode.ctc_candidates").split()
_AT_LEAST_0 = ("model.encoder_layer model.encoder_train_layers model.adaptor_layers model.adaptor_ffn model.adaptor_window model.ctc_spelling data.num_workers train.max_steps train.lr_adaptor train.lr_llm train.lr_encoder train.encoder_steps train.weight_decay "
               "train.warmup_steps train.grad_clip train.eval_every train.eval_wer_utterances train.save_every "
               "train.adaptor_only_steps train.ctc_weight train.byte_ctc_weight train.ctc_steps train.ctc_only_steps train.ctc_only_batch_size decode.extra_tokens "
               "decode.min_tokens_per_segment decode.max_tokens_per_segment").split()
_RANGES = {**dict.fromkeys(_AT_LEAST_1, (1, math.inf, "at least 1")),
           **dict.fromkeys(_AT_LEAST_0, (0, math.inf, "at least 0")),
           **dict.fromkeys(("selection.lora_alpha", "decode.tokens_per_second"), (1e-12, math.inf, "above 0")),
           "model.adaptor_dropout": (0, 0.999, "at least 0 and below 1"),
           "model.time_mask": (0, 0.9, "at least 0 and at most 0.9"), "model.time_stretch": (0, 0.5, "in [0, 0.5]"), "model.channel_mask": (0, 0.9, "at least 0 and at most 0.9"), "train.min_lr_ratio": (0, 1, "in [0, 1]"),
           "decode.ctc_weight": (0, 1, "in [0, 1]")}


def _check_range(full: str, value: Any, source: str) -> None:
    if full not in _RANGES or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high, text = _RANGES[full]
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{source}: {full} must be {text}, got {value!r}")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check `value` against a field annotation; ints are accepted for floats, None for optional fields."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if type(None) in options and (value is None or (str not in options and value in ("None", "none"))):
            return None  # `num_tensors=None` means null where the field cannot hold a string
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0])
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-5 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if annotation in (str, float) and not isinstance(value, annotation):
        raise ConfigError(f"{key}: expected a {annotation.__name__}, got {value!r}")
    return value


def _apply(section: Any, values: dict[str, Any], prefix: str, source: str) -> None:
    hints = typing.get_type_hints(type(section))
    names = [f.name for f in dataclasses.fields(section)]
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{source}: unknown key '{full}'. Valid keys here: {', '.join(names)}")
        current = getattr(section, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{full}' must be a mapping of its keys, got {value!r}")
            _apply(current, value, f"{full}.", source)
            continue
        value = _coerce(value, hints[key], f"{source}: {full}")
        if full in _CHOICES and value not in _CHOICES[full]:
            raise ConfigError(f"{source}: {full} must be one of {', '.join(_CHOICES[full])}, got {value!r}")
        _check_range(full, value, source)
        setattr(section, key, value)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.lr_llm=1e-5` -> (["train", "lr_llm"], 1e-05); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value, e.g. train.max_steps=100")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"override '{text}': the value is not valid YAML; quote it, e.g. key='[a'") from None
    return key.strip().split("."), value


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), base: Config | None = None) -> Config:
    """Defaults (or a copy of `base`), then the YAML file, then `key=value` overrides, each checked."""
    config = copy.deepcopy(base) if base is not None else Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            what = "is a folder, not a YAML file" if path.is_dir() else "does not exist"
            raise ConfigError(f"config file {path} {what}; see configs/ for the shipped ones")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: not a valid YAML text file ({error}); see configs/ for examples") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections (model:, train:, ...)")
        _apply(config, values, "", str(path))
    for text in overrides:
        keys, value = parse_override(text)
        nested: dict[str, Any] = {keys[-1]: value}
        for key in reversed(keys[:-1]):
            nested = {key: nested}
        _apply(config, nested, "", "override")
    check_consistency(config)
    return config


def check_consistency(config: Config) -> None:
    """Settings that are each valid but contradict one another (per-key checks happen in `_apply`)."""
    train, model = config.train, config.model
    if model.encoder_train_layers and model.encoder_layer:
        raise ConfigError(f"model.encoder_train_layers={model.encoder_train_layers} trains the encoder's last layers, "
                          f"and model.encoder_layer={model.encoder_layer} reads a middle layer: set one of them to 0")
    if train.encoder_steps and not model.encoder_train_layers:
        raise ConfigError(f"train.encoder_steps={train.encoder_steps} says when the encoder's top layers start to "
                          "learn, and model.encoder_train_layers is 0 (none learn): set model.encoder_train_layers > 0 "
                          "(or train.encoder_steps=0)")
    if train.encoder_steps > train.ctc_only_steps:
        raise ConfigError(f"train.encoder_steps={train.encoder_steps} are the last of the CTC-only steps, and there "
                          f"are {train.ctc_only_steps} (train.ctc_only_steps): set train.encoder_steps <= "
                          "train.ctc_only_steps (0: the top layers learn in every step the adaptor does)")
    if train.byte_ctc_weight > 0 and not config.ctc_head:
        raise ConfigError("train.byte_ctc_weight trains beside the token CTC loss, and this config has none: set "
                          "train.ctc_weight > 0 or model.compression (or train.byte_ctc_weight=0)")
    if train.freeze_adaptor_in_joint and train.ctc_only_steps == 0 and not train.init_adaptor_only:
        raise ConfigError("train.freeze_adaptor_in_joint freezes the adaptor after the CTC-only steps, and this config "
                          "has none: set train.ctc_only_steps > 0, or train.init_adaptor_only=true to train on the "
                          "adaptor of an --init run (or train.freeze_adaptor_in_joint=false)")
    if train.freeze_adaptor_in_joint and config.selection.strategy == "none":
        raise ConfigError("train.freeze_adaptor_in_joint leaves the joint steps only the LLM's tensors to train, and "
                          "selection.strategy none selects none: choose a strategy (or train.freeze_adaptor_in_joint="
                          "false)")


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
