# section 47 (started 2026-12-08, not finished): the joint decode's CTC weight re-chosen on dev300 for the shipped
# checkpoint (chosen on dev96 with an older run), 4 beams, WER only, alone
cd /work/data/s35; export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
for w in 0.3 0.5 0.4; do
  speechllm evaluate --manifest corpus10k/dev300.jsonl --checkpoint runs/enc0-ship --json pred/enc0-int8.dev300.beam4.ctcw$w.json \
      --predictions pred/enc0-int8.dev300.beam4.ctcw$w.predictions.jsonl --quiet --wer-only model.dtype=float32 \
      decode.ctc_weight=$w > pred/enc0-int8.dev300.beam4.ctcw$w.log 2>&1
  echo "ctcw $w rc=$? $(date)" >> times.log
done
