"""`speechllm import`: each source layout built here in a few seconds of synthetic audio, imported, validated, and
trained on for two steps with the tiny models; bad rows reported by file and line; segments read in place."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechllm.cli import main
from speechllm.data.audio import load_audio, load_utterance
from speechllm.data.importers import default_output, import_source
from speechllm.data.manifest import read_manifest
from speechllm.errors import ConfigError, DataError
from tests.conftest import tiny_overrides, tone

TEXTS = ["hello world", "guten tag", "good morning", "speech model"]


def chord(i: int, seconds: float = 0.6, rate: int = 16_000) -> np.ndarray:
    return tone([220.0 * (i + 1), 330.0 * (i + 1.5)], seconds, rate)


def flac_bytes(samples: np.ndarray, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


# One builder per source layout: each writes a tiny corpus under `root` and returns what to pass as SOURCE.

def make_librispeech(root: Path) -> Path:
    chapter = root / "LibriSpeech" / "dev-clean" / "84" / "121123"
    chapter.mkdir(parents=True)
    lines = []
    for i, text in enumerate(TEXTS):
        soundfile.write(chapter / f"84-121123-{i:04d}.flac", chord(i), 16_000)
        lines.append(f"84-121123-{i:04d} {text.upper()}")
    (chapter / "84-121123.trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "LibriSpeech" / "dev-clean"


def make_commonvoice(root: Path) -> Path:
    (root / "de" / "clips").mkdir(parents=True)
    lines = ["client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment"]
    for i, text in enumerate(TEXTS):
        soundfile.write(root / "de" / "clips" / f"common_voice_de_{i}.mp3", chord(i, rate=48_000), 48_000)
        lines.append(f"speaker{i % 2}\tcommon_voice_de_{i}.mp3\t{text}\t2\t0\t\t\t\t\tde\t")
    (root / "de" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "de" / "train.tsv"


def write_recordings(root: Path) -> list[tuple[str, float, float]]:
    """Two 2.4 s recordings, each of two utterances; (recording, start, end) per utterance."""
    root.mkdir(parents=True, exist_ok=True)
    for r in range(2):
        soundfile.write(root / f"rec{r}.wav", np.concatenate([chord(2 * r, 1.2), chord(2 * r + 1, 1.2)]), 16_000)
    return [(f"rec{i // 2}", 1.2 * (i % 2), 1.2 * (i % 2) + 1.0) for i in range(4)]


def make_kaldi(root: Path) -> Path:
    spans = write_recordings(root / "audio")
    data = root / "data" / "train"
    data.mkdir(parents=True)
    (data / "wav.scp").write_text(f"rec0 {root / 'audio' / 'rec0.wav'}\nrec1 {root / 'audio' / 'rec1.wav'}\n")
    (data / "segments").write_text("".join(f"utt{i} {r} {s:.2f} {e:.2f}\n" for i, (r, s, e) in enumerate(spans)))
    (data / "text").write_text("".join(f"utt{i} {text}\n" for i, text in enumerate(TEXTS)))
    (data / "utt2lang").write_text("".join(f"utt{i} {'de' if i == 1 else 'en'}\n" for i in range(4)))
    (data / "utt2spk").write_text("".join(f"utt{i} spk{i % 2}\n" for i in range(4)))
    return data


def make_folder(root: Path) -> Path:
    (root / "recordings" / "day2").mkdir(parents=True)
    for i, text in enumerate(TEXTS):
        name = root / "recordings" / ("day2" if i > 1 else "") / f"take{i}"
        soundfile.write(name.with_suffix(".wav" if i % 2 else ".ogg"), chord(i, rate=22_050), 22_050)
        name.with_suffix(".txt").write_text(f"{text}\n", encoding="utf-8")
    return root / "recordings"


def make_nemo(root: Path) -> Path:
    spans = write_recordings(root)
    lines = [{"audio_filepath": f"{r}.wav", "text": text, "offset": s, "duration": round(e - s, 3),
              "lang": "de" if i == 1 else "en"} for i, ((r, s, e), text) in enumerate(zip(spans, TEXTS))]
    (root / "nemo_manifest.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root / "nemo_manifest.json"


def lhotse_sets(root: Path):
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    spans = write_recordings(root)
    recordings = RecordingSet.from_recordings(Recording.from_file(root / f"rec{r}.wav", recording_id=f"rec{r}")
                                              for r in range(2))
    supervisions = SupervisionSet.from_segments(
        SupervisionSegment(id=f"sup{i}", recording_id=r, start=s, duration=e - s, text=text, speaker=f"spk{i % 2}",
                           language="German" if i == 1 else "English")
        for i, ((r, s, e), text) in enumerate(zip(spans, TEXTS)))
    return recordings, supervisions


def make_lhotse(root: Path) -> Path:
    from lhotse import CutSet

    recordings, supervisions = lhotse_sets(root)
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions).trim_to_supervisions()
    cuts.to_file(root / "cuts_train.jsonl.gz")
    return root / "cuts_train.jsonl.gz"


def make_lhotse_recordings(root: Path) -> Path:
    recordings, supervisions = lhotse_sets(root)
    recordings.to_file(root / "train_recordings.jsonl.gz")
    supervisions.to_file(root / "train_supervisions.jsonl.gz")
    return root / "train_recordings.jsonl.gz"


def hf_dataset(texts: list[str] = TEXTS, column: str = "sentence"):
    from datasets import Audio, Dataset

    # datasets encodes Audio values with torchcodec; stored bytes and paths need none, so cast after building
    audio = [{"bytes": flac_bytes(chord(i)), "path": f"clip_{i}.flac"} for i in range(len(texts))]
    return Dataset.from_dict({"audio": audio, column: texts, "locale": ["en", "de", "en", "en"][: len(texts)]}
                             ).cast_column("audio", Audio())


def make_hf(root: Path) -> Path:
    hf_dataset().save_to_disk(str(root / "cv_hf"))
    return root / "cv_hf"


def make_parquet(root: Path) -> Path:
    root.mkdir(parents=True)
    hf_dataset(column="transcription").to_parquet(str(root / "fleurs.parquet"))
    return root / "fleurs.parquet"


SOURCES = {  # id: (format, builder, languages expected)
    "librispeech": ("librispeech", make_librispeech, {"en": 4}),
    "commonvoice": ("commonvoice", make_commonvoice, {"de": 4}),
    "kaldi": ("kaldi", make_kaldi, {"en": 3, "de": 1}),
    "folder": ("folder", make_folder, {"de": 4}),
    "nemo": ("nemo", make_nemo, {"en": 3, "de": 1}),
    "lhotse-cuts": ("lhotse", make_lhotse, {"en": 3, "de": 1}),
    "lhotse-recordings": ("lhotse", make_lhotse_recordings, {"en": 3, "de": 1}),
    "hf": ("hf", make_hf, {"en": 3, "de": 1}),
    "parquet": ("hf", make_parquet, {"en": 3, "de": 1}),
}


@pytest.fixture(scope="module")
def kappa_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kappa") / "kappa.json"


def train_two_steps(manifest: Path, run: Path, tiny_models, kappa_cache: Path) -> None:
    assert main(["train", "--manifest", str(manifest), "--config", "configs/tiny.yaml", "--output", str(run),
                 "--quiet", *tiny_overrides(*tiny_models), "train.max_steps=2", "train.log_every=1",
                 f"selection.kappa_cache={kappa_cache}"]) == 0
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in steps if "loss" in r)


@pytest.mark.parametrize("name", list(SOURCES))
def test_each_source_imports_validates_and_trains(name, tmp_path, tiny_models, kappa_cache, capsys):
    format, build, languages = SOURCES[name]
    source = build(tmp_path / "source")
    manifest = tmp_path / "out" / "train.jsonl"
    language = ["--language", "de"] if name == "folder" else []
    assert main(["import", format, str(source), "--output", str(manifest), "--quiet", *language]) == 0
    out = capsys.readouterr().out
    assert "4 usable utterances" in out and "no problems" in out and f"wrote {manifest}" in out
    utterances = read_manifest(manifest)
    assert sorted(u.text.lower() for u in utterances) == sorted(TEXTS)
    assert {language: sum(u.language == language for u in utterances) for language in languages} == languages
    assert main(["validate", "--manifest", str(manifest), "--no-tokenizer", "--quiet"]) == 0
    train_two_steps(manifest, tmp_path / "run", tiny_models, kappa_cache)


def test_a_nemo_manifest_trains_as_it_is(tmp_path, tiny_models, kappa_cache):
    manifest = make_nemo(tmp_path / "nemo")
    assert main(["validate", "--manifest", str(manifest), "--no-tokenizer", "--quiet"]) == 0
    train_two_steps(manifest, tmp_path / "run", tiny_models, kappa_cache)


@pytest.mark.parametrize("build", [make_kaldi, make_lhotse, make_nemo])
def test_segments_are_read_in_place_and_match_the_cut_out_audio(build, tmp_path):
    source = build(tmp_path / "source")
    format = {make_kaldi: "kaldi", make_lhotse: "lhotse", make_nemo: "nemo"}[build]
    result = import_source(format, source, tmp_path / "m.jsonl")
    assert result.audio_files == []  # nothing re-encoded
    lines = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [line["offset"] for line in lines] == [0.0, 1.2, 0.0, 1.2]
    audio = tmp_path / "source" / ("audio" if build is make_kaldi else "")
    for i, utterance in enumerate(read_manifest(tmp_path / "m.jsonl")):
        whole = load_audio(audio / f"rec{i // 2}.wav")
        start = round(1.2 * (i % 2) * 16_000)
        assert np.array_equal(load_utterance(utterance), whole[start : start + 16_000])
        assert utterance.duration == pytest.approx(1.0)


def test_audio_held_in_a_table_is_saved_as_flac_beside_the_manifest(tmp_path):
    result = import_source("hf", make_hf(tmp_path), tmp_path / "out" / "cv.jsonl")
    assert sorted(p.name for p in result.audio_files) == [f"clip_{i}.flac" for i in range(4)]
    [first, *_] = read_manifest(tmp_path / "out" / "cv.jsonl")
    line = json.loads((tmp_path / "out" / "cv.jsonl").read_text().splitlines()[0])
    assert line["audio"] == "cv_audio/clip_0.flac" and first.audio == tmp_path / "out" / "cv_audio" / "clip_0.flac"
    assert np.allclose(load_audio(first.audio), chord(0), atol=1e-4)


def test_columns_are_configurable_and_named_when_missing(tmp_path):
    hf_dataset(column="words").save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(DataError, match=r"no transcript column \(text or sentence or transcription.*--text-column"):
        import_source("hf", tmp_path / "ds", tmp_path / "m.jsonl")
    with pytest.raises(DataError, match="no column 'lang'.*fix --language-column"):
        import_source("hf", tmp_path / "ds", tmp_path / "m.jsonl", text_column="words", language_column="lang")
    result = import_source("hf", tmp_path / "ds", tmp_path / "m.jsonl", text_column="words", language="fr")
    assert {u.language for u in result.check.utterances} == {"fr"}  # --language overrides the locale column


def test_samples_stored_as_numbers_and_several_arrow_files(tmp_path):
    from datasets import Dataset

    rows = {"audio": [{"array": chord(i).tolist(), "sampling_rate": 16_000} for i in range(2)], "text": TEXTS[:2],
            "id": ["a", "b"]}
    for shard in range(2):
        Dataset.from_dict({k: v[shard : shard + 1] for k, v in rows.items()}).save_to_disk(str(tmp_path / f"s{shard}"))
        next((tmp_path / f"s{shard}").glob("*.arrow")).rename(tmp_path / f"shard{shard}.arrow")
    (tmp_path / "shards").mkdir()
    for shard in range(2):
        (tmp_path / f"shard{shard}.arrow").rename(tmp_path / "shards" / f"shard{shard}.arrow")
    result = import_source("hf", tmp_path / "shards", tmp_path / "m.jsonl", language="en")
    assert [u.id for u in result.check.utterances] == ["a", "b"]
    assert np.allclose(load_utterance(result.check.utterances[1]), chord(1), atol=1e-4)


def test_without_output_the_manifest_goes_to_data_manifests(tmp_path, monkeypatch, capsys):
    source = make_librispeech(tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)
    assert main(["import", "librispeech", str(source), "--quiet"]) == 0
    assert len(read_manifest(tmp_path / "data_manifests" / "librispeech-dev-clean.jsonl")) == 4
    assert "wrote data_manifests/librispeech-dev-clean.jsonl" in capsys.readouterr().out


def test_a_dataset_dict_names_its_splits(tmp_path):
    from datasets import DatasetDict

    DatasetDict({"train": hf_dataset(), "test": hf_dataset()}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"holds the splits train, test; import one at a time, e\.g\. .*dd/train"):
        import_source("hf", tmp_path / "dd", tmp_path / "m.jsonl")
    assert import_source("hf", tmp_path / "dd" / "test", tmp_path / "m.jsonl").manifest == tmp_path / "m.jsonl"


def test_bad_rows_are_reported_by_file_and_line_and_nothing_is_left_behind(tmp_path, capsys):
    source = make_commonvoice(tmp_path / "cv")
    lines = source.read_text().splitlines()
    lines[2] = lines[2].replace("guten tag", "")  # line 3: empty transcript
    (source.parent / "clips" / "common_voice_de_3.mp3").unlink()  # line 5: missing clip
    source.write_text("\n".join(lines) + "\n")
    manifest = tmp_path / "out" / "cv.jsonl"
    assert main(["import", "commonvoice", str(source), "--output", str(manifest), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"{source}:3: empty transcript" in out and f"{source}:5: audio file" in out and "does not exist" in out
    assert "no manifest written" in out and "--on-error skip" in out
    assert not manifest.exists() and not list(manifest.parent.iterdir())  # no partial manifest, no temporary file
    assert main(["import", "commonvoice", str(source), "--output", str(manifest), "--quiet", "--on-error",
                 "skip"]) == 0
    assert len(read_manifest(manifest)) == 2 and "2 problems" in capsys.readouterr().out


def test_a_failed_table_import_removes_the_flac_it_saved(tmp_path):
    from datasets import Dataset

    audio = [{"bytes": flac_bytes(chord(0)), "path": "a.flac"}, {"bytes": b"not audio", "path": "b.flac"}]
    Dataset.from_dict({"audio": audio, "text": ["hello", "world"]}).to_parquet(str(tmp_path / "t.parquet"))
    result = import_source("hf", tmp_path / "t.parquet", tmp_path / "out" / "t.jsonl", language="en")
    assert result.manifest is None and [(p.line, p.kind) for p in result.check.problems] == [(2, "unreadable")]
    assert not (tmp_path / "out" / "t_audio").exists() and not (tmp_path / "out" / "t.jsonl").exists()


def test_kaldi_problems_name_the_file_that_holds_them(tmp_path):
    data = make_kaldi(tmp_path)
    with open(data / "text", "a") as handle:
        handle.write("utt4 no segment here\nutt5 piped\n")
    with open(data / "segments", "a") as handle:
        handle.write("utt5 rec2 0.0 1.0\n")
    with open(data / "wav.scp", "a") as handle:
        handle.write("rec2 sox in.sph -t wav - |\n")
    (data / "segments").write_text((data / "segments").read_text().replace("utt1 rec0 1.20 2.20", "utt1 rec0 1.2 9"))
    problems = import_source("kaldi", data, tmp_path / "m.jsonl").check.problems
    assert [(p.path.name, p.line, p.kind) for p in problems] == [
        ("segments", 2, "bad_segment"), ("text", 5, "missing_segment"), ("wav.scp", 3, "unsupported")]
    assert "piped command" in problems[2].reason and "after the end of the file" in problems[0].reason


def test_a_source_without_languages_needs_language(tmp_path):
    with pytest.raises(DataError, match="names no language; pass --language xx"):
        import_source("folder", make_folder(tmp_path), tmp_path / "m.jsonl")
    data = make_kaldi(tmp_path / "k")
    (data / "utt2lang").unlink()
    with pytest.raises(DataError, match="no utt2lang file; pass --language"):
        import_source("kaldi", data, tmp_path / "m.jsonl")


def test_a_missing_transcript_and_a_duplicate_id(tmp_path):
    folder = make_folder(tmp_path)
    (folder / "take0.txt").unlink()
    (folder / "extra").mkdir()
    soundfile.write(folder / "extra" / "x.wav", chord(0), 16_000)
    (folder / "extra" / "x.txt").write_text("fine")
    result = import_source("folder", folder, tmp_path / "m.jsonl", language="en", on_error="skip")
    assert [(p.path.name, p.kind) for p in result.check.problems] == [("take0.ogg", "missing_transcript")]
    assert len(read_manifest(tmp_path / "m.jsonl")) == 4
    source = make_librispeech(tmp_path / "ls")
    transcript = next(source.rglob("*.trans.txt"))
    transcript.write_text(transcript.read_text() + transcript.read_text().splitlines()[0] + "\n")
    [problem] = import_source("librispeech", source, tmp_path / "m.jsonl", on_error="skip").check.problems
    assert problem.line == 5 and problem.kind == "duplicate_id" and f"{transcript}:1" in problem.reason


def test_unsupported_lhotse_cuts_are_reported(tmp_path):
    from lhotse import CutSet

    recordings, supervisions = lhotse_sets(tmp_path)
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)  # one cut per recording
    mixed = cuts[0].append(cuts[1])
    CutSet.from_cuts([*cuts.trim_to_supervisions(), mixed]).to_file(tmp_path / "cuts.jsonl.gz")
    result = import_source("lhotse", tmp_path / "cuts.jsonl.gz", tmp_path / "m.jsonl", on_error="skip")
    assert [(p.line, p.kind) for p in result.check.problems] == [(5, "unsupported")]
    assert len(result.check.utterances) == 4
    with pytest.raises(DataError, match="is a SupervisionSet; pass its RecordingSet as SOURCE"):
        import_source("lhotse", make_lhotse_recordings(tmp_path / "r").with_name("train_supervisions.jsonl.gz"),
                      tmp_path / "m.jsonl")


def test_missing_optional_packages_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lhotse", None)  # import lhotse raises ImportError
    with pytest.raises(ConfigError, match=r"needs the 'lhotse' package.*pip install 'speechllm\[import\]'"):
        import_source("lhotse", tmp_path, tmp_path / "m.jsonl")


def test_the_cli_offers_every_format():
    from speechllm.cli import IMPORT_FORMATS
    from speechllm.data.importers import FORMATS

    assert IMPORT_FORMATS == tuple(FORMATS)


def test_default_output_is_in_data_manifests():
    assert default_output("librispeech", "/data/LibriSpeech/dev-clean") == Path("data_manifests/librispeech-dev-clean.jsonl")
    assert default_output("lhotse", "cuts_train.jsonl.gz") == Path("data_manifests/lhotse-cuts_train.jsonl")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["import", "kaldi", str(tmp_path / "nope"), "--output", str(tmp_path / "m.jsonl")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'nope'}: does not exist; pass a Kaldi data")
    assert main(["import", "folder", str(tmp_path), "--text-column", "x", "--language", "en"]) == 2
    assert "--text-column applies to the formats hf only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["import", "folder", str(tmp_path), "--language", "english"])
    assert "two-letter ISO 639-1 code" in capsys.readouterr().err


def test_example_manifests_are_valid(capsys):
    examples = Path(__file__).parent.parent / "data_manifests" / "examples"
    for manifest in sorted(examples.glob("*.jsonl")):
        assert main(["validate", "--manifest", str(manifest), "--no-tokenizer", "--quiet"]) == 0, manifest
