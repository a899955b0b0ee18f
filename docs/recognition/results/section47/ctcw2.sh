# section 47 (2026-12-08, continued): the CTC weight further up for seed 0's shipped checkpoint, and the same
# weights for seed 1's (section 46), on dev300, 4 beams, WER only, alone
cd /work/data/s35; export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
ev() {  # run, prediction name, weight
  speechllm evaluate --manifest corpus10k/dev300.jsonl --checkpoint runs/$1 --json pred/$2.dev300.beam4.ctcw$3.json \
      --predictions pred/$2.dev300.beam4.ctcw$3.predictions.jsonl --quiet --wer-only model.dtype=float32 \
      decode.ctc_weight=$3 > pred/$2.dev300.beam4.ctcw$3.log 2>&1
  echo "$2 ctcw $3 rc=$? $(date)" >> times.log
}
ev enc0s1-ship enc0s1-int8 0.3
ev enc0s1-ship enc0s1-int8 0.5
ev enc0-ship enc0-int8 0.6
ev enc0s1-ship enc0s1-int8 0.6
ev enc0-ship enc0-int8 0.7
