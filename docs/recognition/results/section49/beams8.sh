# section 49: 8 beams in place of the config's 4, on dev300, for seeds 0 (shipped) and 1 (int8 exports, float32,
# WER only, alone); the 4-beam numbers are section 47's ctc_weight 0.3 rows
cd /work/data/s35; export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
for run in enc0 enc0s1; do
  speechllm evaluate --manifest corpus10k/dev300.jsonl --checkpoint runs/$run-ship --json pred/$run-int8.dev300.beam8.json \
      --predictions pred/$run-int8.dev300.beam8.predictions.jsonl --quiet --wer-only model.dtype=float32 \
      decode.num_beams=8 > pred/$run-int8.dev300.beam8.log 2>&1
  echo "$run beam8 rc=$? $(date)" >> times.log
done
