import json
from pathlib import Path

import pytest

from speechllm.data.manifest import ManifestError, read_manifest


def write(tmp_path: Path, lines: list, raw: bytes | None = None) -> Path:
    (tmp_path / "a.wav").write_bytes(b"")
    path = tmp_path / "m.jsonl"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


GOOD = {"audio": "a.wav", "text": "hi there", "language": "de", "duration": 1.5, "id": "x", "speaker": "s1"}


def test_good_line_resolves_paths_relative_to_the_manifest(tmp_path):
    [u] = read_manifest(write(tmp_path, [GOOD]))
    assert u.audio == tmp_path / "a.wav" and u.language == "de" and u.duration == 1.5 and u.line == 1
    assert u.extra == {"speaker": "s1"}


def test_defaults_language_en_and_id_from_line(tmp_path):
    [u] = read_manifest(write(tmp_path, [{"audio": "a.wav", "text": "hi"}]))
    assert u.language == "en" and u.id == "m-1"


@pytest.mark.parametrize("line, kind, words", [
    ('{"audio": "a.wav", "text": "hi"', "json", "not valid JSON"),
    ('["a.wav", "hi"]', "json", "JSON object"),
    ({"text": "hi"}, "missing_field", "missing field 'audio'"),
    ({"audio": "a.wav"}, "missing_field", "missing field 'text'"),
    ({"audio": "a.wav", "text": 3}, "field_type", "'text' must be a string"),
    ({"audio": "a.wav", "text": "  "}, "empty_text", "empty transcript"),
    ({"audio": "a.wav", "text": "hi", "language": "english"}, "field_type", "ISO 639-1"),
    ({"audio": "a.wav", "text": "hi", "duration": "2"}, "field_type", "'duration'"),
    ({"audio": "a.wav", "text": "hi", "duration": -1}, "field_type", "'duration'"),
    ({"audio": "a.wav", "text": "hi", "id": 7}, "field_type", "'id'"),
    ({"audio": "missing.wav", "text": "hi"}, "missing_file", "does not exist"),
])
def test_bad_lines_name_file_line_and_problem(tmp_path, line, kind, words):
    path = write(tmp_path, [GOOD, line])
    with pytest.raises(ManifestError) as caught:
        read_manifest(path)
    assert caught.value.line == 2 and caught.value.kind == kind
    assert str(caught.value).startswith(f"{path}:2: ") and words in str(caught.value)


def test_invalid_utf8_is_reported_with_its_line(tmp_path):
    raw = (json.dumps(GOOD) + "\n").encode() + b'{"audio": "a.wav", "text": "caf\xe9"}\n'
    with pytest.raises(ManifestError, match=r"m.jsonl:2: not valid UTF-8"):
        read_manifest(write(tmp_path, [], raw=raw))


def test_duplicate_ids_name_both_lines(tmp_path):
    with pytest.raises(ManifestError, match=r":3: duplicate id 'x' \(first on line 1\)"):
        read_manifest(write(tmp_path, [GOOD, {**GOOD, "id": "y"}, GOOD]))


def test_folder_and_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="is a folder"):
        read_manifest(tmp_path)
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nope.jsonl")


def test_collecting_problems_keeps_the_good_lines(tmp_path):
    problems: list = []
    kept = read_manifest(write(tmp_path, [GOOD, "{oops", {**GOOD, "id": "z"}, {"text": "x"}]), problems=problems)
    assert [u.id for u in kept] == ["x", "z"]
    assert [(p.line, p.kind) for p in problems] == [(2, "json"), (4, "missing_field")]


def test_nemo_field_names_are_aliases(tmp_path):
    nemo = {"audio_filepath": "a.wav", "text": "hi there", "duration": 1.5, "lang": "de", "offset": 0.25}
    [u] = read_manifest(write(tmp_path, [nemo]))
    assert u.audio == tmp_path / "a.wav" and u.language == "de" and u.offset == 0.25 and u.span == (0.25, 1.5)
    assert u.extra == {}
    [u] = read_manifest(write(tmp_path, [{"audio": "a.wav", "audio_filepath": "a.wav", "text": "hi", "source_lang": "fr"}]))
    assert u.language == "fr"


def test_two_names_for_one_field_must_agree(tmp_path):
    with pytest.raises(ManifestError, match=r":1: 'audio' \('a.wav'\) and 'audio_filepath' \('b.wav'\)") as caught:
        read_manifest(write(tmp_path, [{"audio": "a.wav", "audio_filepath": "b.wav", "text": "hi"}]))
    assert caught.value.kind == "field_conflict"
    with pytest.raises(ManifestError, match="'lang' .* and 'source_lang'"):
        read_manifest(write(tmp_path, [{"audio": "a.wav", "text": "hi", "lang": "en", "source_lang": "de"}]))


def test_segments_need_sane_offsets(tmp_path):
    [whole, to_end] = read_manifest(write(tmp_path, [GOOD, {**GOOD, "id": "y", "offset": 0, "duration": None}]))
    assert whole.span == (None, None) and whole.duration == 1.5  # duration alone is only information
    assert to_end.span == (0.0, None)
    for offset in (-1, "1", float("nan"), True):
        with pytest.raises(ManifestError, match="'offset' must be a non-negative number"):
            read_manifest(write(tmp_path, [{**GOOD, "offset": offset}]))
