import json
import logging

import pytest

from speechllm.evaluation import metrics
from speechllm.evaluation.metrics import (
    english_spelling_mapping,
    format_comparison,
    format_table,
    normalize_text,
    per_utterance,
    score,
    uses_characters,
)


def rec(reference: str, hypothesis: str, language: str = "en", id: str = "u") -> dict[str, str]:
    return {"id": id, "language": language, "reference": reference, "hypothesis": hypothesis}


def test_one_substitution_deletion_insertion_in_five_words() -> None:
    # insert "zulu", delete "charlie", substitute "echo" -> "ekko": 3 errors / 5 words
    report = score([rec("alpha bravo charlie delta echo", "zulu alpha bravo delta ekko")])
    en = report["languages"]["en"]
    assert (en["substitutions"], en["deletions"], en["insertions"], en["hits"]) == (1, 1, 1, 3)
    assert en["words"] == 5 and en["n"] == 1
    assert en["wer"] == pytest.approx(0.6)
    assert report["overall"]["wer"] == pytest.approx(0.6)


def test_corpus_level_pooling_not_mean_of_utterances() -> None:
    records = [rec("a", "b", id="1"), rec("a b c d e f g h i j", "a b c d e f g h i j", id="2")]
    report = score(records)
    assert report["languages"]["en"]["wer"] == pytest.approx(1 / 11)
    mean = sum(row["wer"] for row in per_utterance(records)) / 2
    assert mean == pytest.approx(0.5)
    assert report["languages"]["en"]["wer"] != pytest.approx(mean)


def test_english_normalizer() -> None:
    assert normalize_text("Hello, World!", "en") == normalize_text("hello world", "en") == "hello world"
    assert score([rec("Hello, World!", "hello world")])["overall"]["wer"] == 0.0
    assert normalize_text("en-US", "en-US") == normalize_text("en us", "en")
    assert normalize_text("twenty five dollars", "en") == normalize_text("$25", "en")  # numbers become digits


def test_english_spelling_mapping_shipped() -> None:
    mapping = english_spelling_mapping()
    assert mapping["colour"] == "color" and len(mapping) > 1000
    assert normalize_text("The colour", "en") == normalize_text("the color", "en")


def test_german_keeps_umlauts_and_lowercases() -> None:
    assert normalize_text("Über", "de") == normalize_text("über", "de") == "über"
    assert normalize_text("uber", "de") != normalize_text("über", "de")
    assert normalize_text("Straße, bitte!", "de") == "straße bitte"
    report = score([rec("Über die Brücke", "uber die brücke", "de")])
    assert report["languages"]["de"]["substitutions"] == 1


def test_languages_scored_separately_and_pooled() -> None:
    records = [
        rec("the cat sat", "the cat sat", "en", "e1"),
        rec("der hund bellt laut", "der hund", "de", "d1"),
    ]
    report = score(records)
    assert set(report["languages"]) == {"de", "en"}
    assert report["languages"]["en"]["wer"] == 0.0
    assert report["languages"]["de"]["wer"] == pytest.approx(0.5)
    assert report["languages"]["de"]["deletions"] == 2
    overall = report["overall"]
    assert (overall["n"], overall["words"], overall["deletions"]) == (2, 7, 2)
    assert overall["wer"] == pytest.approx(2 / 7)


def test_empty_reference_counts_hypothesis_words_as_insertions(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real = metrics.jiwer.process_words

    def strict(refs: list[str], hyps: list[str]):  # jiwer 3 raises on empty references
        assert all(refs)
        calls.append(refs)
        return real(refs, hyps)

    monkeypatch.setattr(metrics.jiwer, "process_words", strict)
    report = score([rec("(laughs)", "ha ha", id="1"), rec("a b", "a b", id="2")])
    en = report["languages"]["en"]
    assert (en["insertions"], en["words"], en["n"]) == (2, 2, 2)
    assert en["wer"] == pytest.approx(1.0)
    assert calls == [["a b"]]
    rows = per_utterance([rec("", "", id="3"), rec("", "word", id="4")])
    assert rows[0]["wer"] == 0.0 and rows[1]["wer"] is None and rows[1]["insertions"] == 1


def test_all_empty_references_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        report = score([rec("", "")])
    assert report["overall"]["wer"] == 0.0
    assert "no reference words" in caplog.text


def test_cer_and_character_languages() -> None:
    report = score([rec("abcd", "abxd")])
    assert report["languages"]["en"]["cer"] == pytest.approx(0.25)
    assert uses_characters("zh") and uses_characters("ja-JP") and not uses_characters("de")
    zh = score([rec("你好，世界。", "你好 世间", "zh")])["languages"]["zh"]
    assert zh["primary"] == "cer" and zh["characters"] == 4
    assert zh["cer"] == pytest.approx(0.25)


def test_rtf() -> None:
    report = score([rec("a", "a")], audio_seconds=100.0, decode_seconds=25.0)
    assert report["rtf"] == pytest.approx(0.25)
    assert score([rec("a", "a")])["rtf"] is None
    assert "RTF 0.2500" in format_table(report)


def test_per_utterance_is_json_ready() -> None:
    rows = per_utterance([rec("Hello, World!", "hello word", id="x")])
    assert rows[0]["id"] == "x" and rows[0]["normalized_reference"] == "hello world"
    assert rows[0]["wer"] == pytest.approx(0.5)
    json.dumps(rows)


def test_bad_record_names_the_record() -> None:
    with pytest.raises(ValueError, match=r"record 1 \(id='b'\).*hypothesis"):
        score([rec("a", "a", id="a"), {"id": "b", "language": "en", "reference": "a"}])


def test_format_table_and_comparison() -> None:
    report = score(
        [rec("a b", "a b", "en"), rec("x y", "x z", "de"), rec("你好", "你好", "zh")],
        audio_seconds=10.0,
        decode_seconds=1.0,
    )
    table = format_table(report, title="dev")
    lines = table.splitlines()
    assert lines[0] == "dev"
    for language in ("en", "de", "zh", "overall"):
        assert any(line.startswith(language) for line in lines)
    assert "50.00" in table and "RTF 0.1000" in table
    before = score([rec("a b", "a c", "en")])
    comparison = format_comparison({"before": before, "after": report})
    assert "before" in comparison and "after" in comparison
    de_line = next(line for line in comparison.splitlines() if line.startswith("de"))
    assert de_line.split()[-2:] == ["-", "50.00"]
    assert any(line.startswith("zh (CER)") for line in comparison.splitlines())
