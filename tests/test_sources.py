"""Model sources: a missing folder, an unreachable hub and a broken model are one clear ModelSourceError, at once."""

from __future__ import annotations

import time

import pytest

from speechllm.model import sources
from speechllm.model.bundled import BundledModelError
from speechllm.model.sources import (
    ModelSourceError,
    check_source,
    hub_unreachable_reason,
    load_llm,
    load_tokenizer,
    resolve_source,
)


def test_offline_hub_id_fails_at_once_naming_the_offline_choices():
    start = time.perf_counter()
    with pytest.raises(ModelSourceError) as caught:
        load_tokenizer("meta-llama/Llama-3.1-8B-Instruct")
    assert time.perf_counter() - start < 1.0
    message = str(caught.value)
    assert "'meta-llama/Llama-3.1-8B-Instruct'" in message and "HF_HUB_OFFLINE" in message
    assert "bundled:smollm2-135m" in message and "local folder" in message and "\n" not in message


def test_unreachable_hub_is_asked_once_and_never_retried(monkeypatch):
    """Without HF_HUB_OFFLINE the hub is probed once; a failed probe stops before transformers tries to download."""
    import huggingface_hub.utils

    calls = []

    class NoNetwork:
        def head(self, url, timeout):
            calls.append(url)
            raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: NoNetwork())
    hub_unreachable_reason.cache_clear()
    for source in ("org/one", "org/two"):
        with pytest.raises(ModelSourceError, match=f"'{source}': the model hub .* cannot be reached .*Name or "
                           "service not known.* not in the local Hugging Face cache"):
            load_llm(source)
    assert len(calls) == 1


def test_a_cached_hub_model_is_used_when_the_hub_is_unreachable(monkeypatch, tiny_models):
    monkeypatch.setattr(sources, "_cached_snapshot", lambda repo: str(tiny_models[1]))
    assert resolve_source("org/cached") == str(tiny_models[1])
    assert load_tokenizer("org/cached").bos_token == "<s>"


def test_a_missing_folder_is_named_as_one():
    with pytest.raises(ModelSourceError, match="no language model at '/nonexistent/llm': no such folder"):
        load_llm("/nonexistent/llm")
    with pytest.raises(ModelSourceError, match="no tokenizer at './here/there/llm'"):
        check_source("./here/there/llm", "tokenizer")


def test_a_folder_of_the_wrong_kind_is_a_model_source_error(tmp_path, tiny_models):
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelSourceError, match="cannot load the language model") as caught:
        load_llm(str(tmp_path))
    assert "\n" not in str(caught.value)
    with pytest.raises(ModelSourceError, match="cannot load the language model"):
        load_llm(str(tiny_models[0].parent))  # a folder with no config.json


def test_check_source_of_a_bundled_model_does_not_convert(monkeypatch):
    from speechllm.model import bundled

    monkeypatch.setattr(bundled, "resolve_bundled", lambda *a, **k: pytest.fail("converted"))
    with pytest.raises(BundledModelError, match="unknown bundled model 'bundled:nope'"):
        check_source("bundled:nope")
    assert issubclass(BundledModelError, ModelSourceError)
