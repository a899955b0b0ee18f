import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "recipe_data.py"
DEV96 = (SCRIPT.parent.parent / "docs" / "recognition" / "dev96.ids").read_text().split()  # one id a line


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _row(uid: str, duration: float = 2.0) -> dict:
    return {"id": uid, "language": uid[:2], "duration": duration, "audio": f"{uid}.wav", "text": "x"}


def _corpus(folder: Path, dev_ids: list[str]) -> None:
    folder.mkdir()
    _write(folder / "train.jsonl", [_row("en_train_0", 4.9), _row("de_train_0", 5.1), _row("en_train_1", 5.0)])
    _write(folder / "dev.jsonl", [_row(i) for i in dev_ids])
    test = [_row(f"{lang}_test_{k}") for k in range(3) for lang in ("en", "de")]
    _write(folder / "test.jsonl", test)
    _write(folder / "test_unseen_voices.jsonl", test)


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(folder), *args], capture_output=True, text=True,
                          timeout=60)


def test_recipe_manifests_keep_dev96_apart_from_the_larger_dev_set(tmp_path):
    # dev.jsonl in corpus order: dev96's ids among others, which the larger dev set must take from
    others = [f"{lang}_dev_9{k:05d}" for k in range(4) for lang in ("en", "de")]
    dev_ids = others[:3] + list(reversed(DEV96)) + others[3:]
    _corpus(tmp_path / "c", dev_ids)
    result = _run(tmp_path / "c", "--dev-per-language", "3", "--test-per-language", "2")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "c"
    assert [r["id"] for r in _read(folder / "train_max5s.jsonl")] == ["en_train_0", "en_train_1"]
    assert [r["id"] for r in _read(folder / "dev96mix.jsonl")] == DEV96  # the ids file's order, not the corpus's
    dev6 = [r["id"] for r in _read(folder / "dev6.jsonl")]
    assert dev6 == [i for i in others if int(i[-1]) < 3]  # the first 3 a language, in corpus order, none of dev96
    assert [r["id"] for r in _read(folder / "test2.jsonl")] == ["en_test_0", "de_test_0", "en_test_1", "de_test_1"]
    assert _read(folder / "unseen2.jsonl") == _read(folder / "test2.jsonl")


def test_a_corpus_without_dev96_is_refused_with_the_command_that_makes_one(tmp_path):
    _corpus(tmp_path / "c", DEV96[1:])
    result = _run(tmp_path / "c")
    assert result.returncode != 0
    assert "lacks 1 of the dev96 ids" in result.stderr and "--per-language 10000" in result.stderr
    assert not (tmp_path / "c" / "dev96mix.jsonl").exists()
