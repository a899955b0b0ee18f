"""Dev evaluation during training: the loss with the true, shuffled and silent audio over the whole dev set, and
greedy WER over its first utterances, both shared out over the processes."""

from __future__ import annotations

from typing import Any

from accelerate import Accelerator
from accelerate.utils import gather_object

from speechllm.config import Config
from speechllm.data.audio import load_utterance
from speechllm.evaluation.metrics import score
from speechllm.evaluation.reliance import audio_reliance
from speechllm.evaluation.transcribe import transcribe_samples
from speechllm.training.inputs import Inputs


def evaluate_dev(core: Any, accelerator: Accelerator, inputs: Inputs, config: Config, tokenizer: Any,
                 logmel: Any) -> tuple[dict[str, float], list[dict[str, str]]]:
    """Dev loss with the true, shuffled and silent audio over the whole dev set on all processes
    (`reliance.audio_reliance`), and greedy WER over its first train.eval_wer_utterances, decoded in shares; the
    metrics and the transcripts behind the WER (id, language, reference, hypothesis). `core` is the unwrapped
    SpeechLLM; it is left in eval mode."""
    reliance = audio_reliance(core, inputs.dev_loader, accelerator.device, core.autocast,
                              lambda totals: accelerator.reduce(totals, "sum"))
    core.eval()  # audio_reliance gives the model back in the mode it found it in: training, with its dropout and masks
    result = {"dev_loss": reliance["loss"], "dev_loss_shuffled": reliance["loss_shuffled"],
              "dev_loss_silence": reliance["loss_silence"], "audio_gap": reliance["audio_gap"],
              "audio_gap_start": reliance["audio_gap_start"], "audio_gap_rest": reliance["audio_gap_rest"]}
    if core.adaptor.ctc is not None:  # the CTC head alone, over the whole dev set: how well the adaptor hears
        result.update(_ctc_wer(core, accelerator, inputs, tokenizer))
    subset = inputs.dev[: config.train.eval_wer_utterances]
    records = []
    if subset:
        mine = list(range(accelerator.process_index, len(subset), accelerator.num_processes))
        audios = [load_utterance(subset[i]) for i in mine]
        texts = transcribe_samples(core, tokenizer, logmel, audios, config.decode)
        hypotheses = dict(gather_object(list(zip(mine, texts))))
        records = [{"id": u.id, "language": u.language, "reference": u.text, "hypothesis": hypotheses[i]}
                   for i, u in enumerate(subset)]
        report = score(records)
        result["dev_wer"] = report["overall"]["wer"]
        result.update({f"dev_wer_{language}": row["wer"] for language, row in report["languages"].items()})
    return result, records


def _ctc_wer(core: Any, accelerator: Accelerator, inputs: Inputs, tokenizer: Any) -> dict[str, float]:
    """dev_ctc_wer (and per language): greedy CTC transcripts of the adaptor's head, no LLM."""
    mine = []
    for batch in inputs.dev_loader:
        if batch.ids:
            batch.to(accelerator.device)
            texts = core.ctc_greedy(batch.features, batch.frames, batch.encoded)
            mine += [(i, tokenizer.decode(t, skip_special_tokens=True).strip()) for i, t in zip(batch.ids, texts)]
    hypotheses = dict(gather_object(mine))
    report = score([{"id": u.id, "language": u.language, "reference": u.text, "hypothesis": hypotheses[u.id]}
                    for u in inputs.dev])
    return {"dev_ctc_wer": report["overall"]["wer"],
            **{f"dev_ctc_wer_{language}": row["wer"] for language, row in report["languages"].items()}}
