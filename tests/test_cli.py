import json

import pytest

from speechllm.cli import build_parser, main, parse


@pytest.mark.parametrize("command", [[], ["train"], ["transcribe"], ["evaluate"], ["validate"], ["import"], ["kappa"], ["synth"], ["demo"]])
def test_help_explains_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: speechllm" in out and len(out) > 200


def test_bad_manifest_is_one_clear_line_not_a_traceback(tmp_path, capsys):
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text('{"audio": "x.wav", "text": "hi"}\n', encoding="utf-8")
    code = main(["train", "--manifest", str(manifest), "--output", str(tmp_path / "run"), "--quiet",
                 "model.encoder=/nonexistent/whisper", "model.llm=/nonexistent/llm"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert "/nonexistent/llm" in err and "bundled:" in err  # names the source and the offline alternative


def test_bad_manifest_line_is_reported_before_any_model_loads(tiny_models, tmp_path, capsys):
    from tests.conftest import tiny_overrides, write_tone_corpus

    manifest = write_tone_corpus(tmp_path / "c")
    lines = manifest.read_text().splitlines()
    lines.insert(2, json.dumps({"audio": "utt0.wav", "text": "x", "language": "english"}))
    manifest.write_text("\n".join(lines) + "\n")
    code = main(["train", "--manifest", str(manifest), "--config", "configs/tiny.yaml", "--output",
                 str(tmp_path / "run"), "--quiet", *tiny_overrides(*tiny_models),
                 f"selection.kappa_cache={tmp_path / 'k.json'}"])
    err = capsys.readouterr().err
    assert code == 2 and f"{manifest}:3:" in err and "ISO 639-1" in err


def test_validate_command_reports_problems_and_exit_code(tmp_path, capsys):
    from tests.conftest import write_tone_corpus

    manifest = write_tone_corpus(tmp_path / "c")
    assert main(["validate", "--manifest", str(manifest), "--no-tokenizer", "--quiet"]) == 0
    (tmp_path / "c" / "utt2.wav").unlink()
    summary_path = tmp_path / "summary.json"
    assert main(["validate", "--manifest", str(manifest), "--no-tokenizer", "--quiet", "--json",
                 str(summary_path)]) == 1
    out = capsys.readouterr().out
    assert f"{manifest}:3" in out and "missing_file" in out
    assert json.loads(summary_path.read_text())["problems"] == {"missing_file": 1}


def test_overrides_after_the_options_of_a_command_with_positionals_are_overrides(capsys):
    # the README's forms: argparse alone refuses key=value once a command's first positionals came before options
    args = parse(["transcribe", "a.wav", "b.wav", "--checkpoint", "runs/x", "decode.num_beams=4"])
    assert args.audio == ["a.wav", "b.wav"] and args.overrides == ["decode.num_beams=4"]
    args = parse(["export", "runs/x", "decode.num_beams=1", "--output", "out", "--int8", "data.feature_cache_dir=null"])
    assert args.run == "runs/x" and args.int8
    assert args.overrides == ["decode.num_beams=1", "data.feature_cache_dir=null"]
    with pytest.raises(SystemExit) as exit_info:  # a mistyped option is still refused
        parse(["export", "runs/x", "--output", "out", "--int9"])
    assert exit_info.value.code == 2 and "--int9" in capsys.readouterr().err
