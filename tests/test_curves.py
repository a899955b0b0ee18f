"""A run's curves: metrics.jsonl read back (a resumed run's repeated steps keep their last value) and drawn."""

import json

from speechllm.training.curves import plot_runs, read_metrics


def write_metrics(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_resumed_steps_keep_their_last_value_and_the_picture_is_written(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_metrics(run / "metrics.jsonl", [
        {"step": 10, "loss": 4.0}, {"step": 20, "loss": 3.0},
        {"step": 20, "dev_loss": 3.1, "dev_loss_shuffled": 3.2, "dev_loss_silence": 3.3, "audio_gap": 0.1,
         "dev_wer": 1.0, "dev_wer_en": 0.9},
        {"step": 20, "loss": 2.9},  # written again after a resume from step 10
        {"step": 30, "loss": 2.5},
        {"step": 30, "dev_loss": 2.0, "dev_loss_shuffled": 3.0, "dev_loss_silence": 3.1, "audio_gap": 1.0,
         "dev_wer": 0.5, "dev_wer_en": 0.4},
    ])
    train, dev = read_metrics(run / "metrics.jsonl")
    assert [(r["step"], r["loss"]) for r in train] == [(10, 4.0), (20, 2.9), (30, 2.5)]
    assert [r["audio_gap"] for r in dev] == [0.1, 1.0]
    out = plot_runs([run, run / "metrics.jsonl"], tmp_path / "curves.png", labels=["a", "b"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_the_wer_panel_draws_the_ctc_heads_wer_when_the_llms_is_not_logged():
    from speechllm.training.curves import wer_series

    dev = [{"step": 500, "dev_ctc_wer": 0.8, "dev_ctc_wer_en": 0.7, "dev_ctc_wer_de": 0.9},
           {"step": 1000, "dev_wer": 0.6, "dev_wer_en": 0.5, "dev_ctc_wer": 0.4, "dev_ctc_wer_en": 0.3,
            "dev_ctc_wer_de": 0.5}]
    series = wer_series(dev)
    assert set(series) == {"all", "en", "ctc all", "ctc de", "ctc en"}
    assert series["ctc all"][0] == [(500, 80.0), (1000, 40.0)] and series["ctc all"][1] == "-"
    assert series["all"][0] == [(1000, 60.0)] and series["ctc en"][1] == ":"
