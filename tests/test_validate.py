import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechllm.data.validate import FIRST_PROBLEMS, check_manifest, format_summary, summarize
from tests.conftest import make_tokenizer, tone

MAX_TOKENS = 20


def write_lines(path: Path, lines: list[dict | bytes | str]) -> Path:
    """One manifest line per item: dicts as JSON, bytes and str as they are."""
    raw = [
        x if isinstance(x, bytes) else (json.dumps(x) if isinstance(x, dict) else x).encode("utf-8")
        for x in lines
    ]
    path.write_bytes(b"\n".join(raw) + b"\n")
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Three good utterances (en 1.0 s, de 2.0 s, en 0.5 s at 8 kHz) among every kind of line problem."""
    soundfile.write(tmp_path / "good1.wav", tone([300.0], 1.0), 16_000)
    soundfile.write(tmp_path / "good2.flac", tone([500.0], 2.0), 16_000)
    soundfile.write(tmp_path / "good3.wav", tone([200.0], 0.5, 8_000), 8_000)
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00not really audio")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16_000)
    nan = tone([300.0], 0.5)
    nan[10] = np.nan
    soundfile.write(tmp_path / "nan.wav", nan, 16_000, subtype="FLOAT")
    soundfile.write(tmp_path / "short.wav", tone([300.0], 0.01), 16_000)
    return write_lines(
        tmp_path / "train.jsonl",
        [
            {"id": "a", "audio": "good1.wav", "text": "hello world", "language": "en"},  # 1 good
            '{"audio": "good1.wav", "text": ',  # 2 json
            b'{"audio": "good1.wav", "text": "caf\xe9"}',  # 3 encoding
            {"audio": "good1.wav"},  # 4 missing_field
            {"audio": "good1.wav", "text": 5},  # 5 field_type
            {"audio": "good1.wav", "text": "   "},  # 6 empty_text
            {"audio": "nope.wav", "text": "gone"},  # 7 missing_file
            "",  # 8 blank: skipped
            {"id": "b", "audio": "good2.flac", "text": "guten tag", "language": "de"},  # 9 good
            {"id": "a", "audio": "good1.wav", "text": "again"},  # 10 duplicate_id
            {"audio": "junk.wav", "text": "junk"},  # 11 unreadable
            {"audio": "empty.wav", "text": "empty"},  # 12 empty_audio
            {"audio": "nan.wav", "text": "nan"},  # 13 non_finite
            {"audio": "short.wav", "text": "short"},  # 14 too_short
            {"audio": "good1.wav", "text": "x" * (MAX_TOKENS + 1)},  # 15 text_too_long
            {"id": "c", "audio": "good3.wav", "text": "morning", "language": "en"},  # 16 good
        ],
    )


EXPECTED = [
    (2, "json"),
    (3, "encoding"),
    (4, "missing_field"),
    (5, "field_type"),
    (6, "empty_text"),
    (7, "missing_file"),
    (10, "duplicate_id"),
    (11, "unreadable"),
    (12, "empty_audio"),
    (13, "non_finite"),
    (14, "too_short"),
    (15, "text_too_long"),
]


def test_every_problem_with_its_kind_and_line(mixed):
    result = check_manifest(mixed, make_tokenizer(), MAX_TOKENS)
    assert [(p.line, p.kind) for p in result.problems] == EXPECTED
    assert all(p.path == mixed and str(p).startswith(f"{mixed}:{p.line}: ") for p in result.problems)
    assert [u.id for u in result.utterances] == ["a", "b", "c"]
    assert [u.line for u in result.utterances] == [1, 9, 16]
    assert result.durations == pytest.approx([1.0, 2.0, 0.5], abs=1e-3)


def test_without_a_tokenizer_long_transcripts_pass(mixed):
    result = check_manifest(mixed, workers=1)
    assert [(p.line, p.kind) for p in result.problems] == [e for e in EXPECTED if e[1] != "text_too_long"]
    assert [u.line for u in result.utterances] == [1, 9, 15, 16]
    with pytest.raises(ValueError, match="both tokenizer and max_text_tokens"):
        check_manifest(mixed, make_tokenizer())
    with pytest.raises(ValueError, match="workers"):
        check_manifest(mixed, workers=0)


def test_summary_counts_hours_per_language_and_problems(mixed):
    summary = summarize(check_manifest(mixed, make_tokenizer(), MAX_TOKENS, show_progress=True))
    assert summary["utterances"] == 3
    assert summary["hours"] == pytest.approx(3.5 / 3600, rel=1e-3)
    assert summary["languages"].keys() == {"de", "en"}
    assert summary["languages"]["en"]["utterances"] == 2
    assert summary["languages"]["en"]["hours"] == pytest.approx(1.5 / 3600, rel=1e-3)
    assert summary["languages"]["de"] == {"utterances": 1, "hours": pytest.approx(2.0 / 3600, rel=1e-3)}
    assert summary["problems"] == {kind: 1 for _, kind in EXPECTED}
    assert len(summary["first_problems"]) == len(EXPECTED)
    assert summary["first_problems"][0].startswith(f"{mixed}:2: not valid JSON")
    json.dumps(summary)  # the CLI can write it as JSON


def test_format_summary_names_every_kind_and_line(mixed):
    text = format_summary(summarize(check_manifest(mixed, make_tokenizer(), MAX_TOKENS)), mixed)
    assert text.startswith(f"{mixed}: 3 usable utterances")
    assert "12 problems" in text
    for line, kind in EXPECTED:
        assert kind in text
        assert f"{mixed}:{line}:" in text
    table = [line.split() for line in text.splitlines() if line.startswith(("en ", "de "))]
    assert table == [["de", "1", "0.00"], ["en", "2", "0.00"]]


def test_clean_manifest_reports_no_problems(tmp_path, caplog):
    soundfile.write(tmp_path / "a.wav", tone([300.0], 1.0), 16_000)
    manifest = write_lines(tmp_path / "m.jsonl", [{"audio": "a.wav", "text": "fine"}])
    with caplog.at_level(logging.INFO, logger="speechllm.data.validate"):
        result = check_manifest(manifest)
    assert not result.problems and len(result.utterances) == 1
    assert "1 usable utterances" in caplog.text
    assert format_summary(summarize(result), manifest).endswith("no problems")


def test_one_line_can_have_an_audio_and_a_text_problem(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16_000)
    manifest = write_lines(tmp_path / "m.jsonl", [{"audio": "empty.wav", "text": "far too long"}])
    result = check_manifest(manifest, make_tokenizer(), 5)
    assert [(p.line, p.kind) for p in result.problems] == [
        (1, "empty_audio"),
        (1, "text_too_long"),
        (0, "empty"),
    ]


def test_empty_manifests(tmp_path):
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n", encoding="utf-8")
    result = check_manifest(blank)
    assert [(p.line, p.kind) for p in result.problems] == [(0, "empty")]
    assert "holds no utterances" in str(result.problems[0])
    all_bad = write_lines(tmp_path / "bad.jsonl", [{"audio": "nope.wav", "text": "x"}])
    assert [p.kind for p in check_manifest(all_bad).problems] == ["missing_file", "empty"]


def test_first_problems_are_capped(tmp_path):
    manifest = write_lines(tmp_path / "m.jsonl", [{"audio": f"n{i}.wav", "text": "x"} for i in range(30)])
    summary = summarize(check_manifest(manifest))
    assert summary["problems"] == {"missing_file": 30, "empty": 1}
    assert len(summary["first_problems"]) == FIRST_PROBLEMS
    text = format_summary(summary, manifest)
    assert f"first {FIRST_PROBLEMS} problems:" in text and f"{manifest}:21:" not in text


def test_transcripts_implausible_for_their_audio_are_flagged(tmp_path):
    soundfile.write(tmp_path / "blip.wav", tone([300.0], 0.05), 16_000)
    soundfile.write(tmp_path / "long.wav", tone([300.0], 12.0), 16_000)
    soundfile.write(tmp_path / "ok.wav", tone([300.0], 1.5), 16_000)
    twelve_words = "one two three four five six seven eight nine ten eleven twelve"
    manifest = write_lines(tmp_path / "m.jsonl", [
        {"audio": "ok.wav", "text": "good morning to you"},  # 1: about 11 letters a second
        {"audio": "blip.wav", "text": twelve_words},  # 2: 240 words a second
        {"audio": "long.wav", "text": "a"},  # 3: one letter for 12 s
        {"audio": "blip.wav", "text": "hm"},  # 4: a tightly cut short word is fine
        {"audio": "long.wav", "text": "yes, well"},  # 5: a few words with a long pause is fine
    ])
    result = check_manifest(manifest, plausibility=True)
    assert [(p.line, p.kind) for p in result.problems] == [(2, "implausible_length"), (3, "implausible_length")]
    assert str(result.problems[0]).startswith(f"{manifest}:2: transcript has 12 words")
    assert "words/s" in result.problems[0].reason and "wrong line" in result.problems[0].reason
    assert "1 letter for 12.0 s of audio" in result.problems[1].reason
    assert [u.line for u in result.utterances] == [1, 4, 5]
    assert not check_manifest(manifest).problems  # training's check leaves the heuristic out


def test_validate_without_a_hub_names_every_bad_line_and_says_why_the_length_check_was_skipped(mixed, capsys):
    """No --config: the default tokenizer is a hub id, and this machine (HF_HUB_OFFLINE) has no hub."""
    from speechllm.cli import main

    summary_path = mixed.parent / "summary.json"
    assert main(["validate", "--manifest", str(mixed), "--quiet", "--json", str(summary_path)]) == 1
    out = capsys.readouterr().out
    for line, kind in EXPECTED:
        if kind != "text_too_long":
            assert f"{mixed}:{line}:" in out and kind in out
    assert "check text_too_long skipped: cannot load the tokenizer 'meta-llama/Llama-3.1-8B-Instruct'" in out
    summary = json.loads(summary_path.read_text())
    assert "HF_HUB_OFFLINE" in summary["skipped_checks"]["text_too_long"]
    assert "text_too_long" not in summary["problems"]


def test_validate_with_a_local_tokenizer_measures_transcripts(mixed, tiny_models, capsys):
    from speechllm.cli import main

    assert main(["validate", "--manifest", str(mixed), "--quiet", f"model.llm={tiny_models[1]}",
                 f"data.max_text_tokens={MAX_TOKENS}"]) == 1
    out = capsys.readouterr().out
    assert f"{mixed}:15:" in out and "text_too_long" in out and "skipped" not in out
