# decode speed: finished rows kept (35b4b3a, cloned to /tmp/old) against dropped (61b6210+, /work/main), the shipped checkpoint on the
# same 200 test utterances (100 a language), float32, one thread each, old and new side by side (one per core)
cd /work/data/s33; export SPEECHLLM_CACHE=/work/data/s33/models OMP_NUM_THREADS=1
one() {  # side beams
  if [ $1 = old ]; then PP=/tmp/old; else PP=/work/main; fi
  start=$(date +%s.%N)
  PYTHONPATH=$PP python -m speechllm.cli evaluate --manifest corpus30k/test200.jsonl --checkpoint /work/main/speechllm/resources/offline-cpu \
    --json pred/bench.$1.b$2.json --predictions pred/bench.$1.b$2.predictions.jsonl --quiet --wer-only model.dtype=float32 decode.num_beams=$2 > pred/bench.$1.b$2.log 2>&1
  echo "$1 beams=$2 rc=$? secs=$(echo "$(date +%s.%N) - $start" | bc)"
}
for beams in 1 4; do one old $beams & one new $beams & wait; done
