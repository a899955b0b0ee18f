# after recipe.sh: CI on a clean clone (alone), then dev300 greedy (paired against section 37's cand_s0), the test
# WER with the config's decoding (4 beams), the int8 export's size and dev300 greedy, then unseen voices
cd /work/data/s34
while pgrep -f "bash recipe.sh" > /dev/null; do sleep 10; done
echo "start $(date)"
rm -rf /tmp/ci && git clone -q /work/main /tmp/ci && (cd /tmp/ci && git log --oneline -1 && start=$(date +%s); timeout 1700 bash .ci/run > /tmp/ci.log 2>&1; echo rc=$? secs=$(( $(date +%s)-start )) >> /tmp/ci.log)
(cd /work/main && pip install -q --no-deps -e . > /dev/null 2>&1)
echo "ci $(tail -1 /tmp/ci.log) $(date)"
export SPEECHLLM_CACHE=/work/data/s34/models OMP_NUM_THREADS=2
ev() { speechllm evaluate --manifest $1 --checkpoint $2 --json $3 --predictions ${3%.json}.predictions.jsonl --quiet model.dtype=float32 ${@:4} > ${3%.json}.log 2>&1; echo "$3 rc=$? $(date)"; }
ev corpus10k/dev300.jsonl runs/top4r pred/top4r.dev300.json decode.num_beams=1
ev corpus10k/test.jsonl runs/top4r pred/top4r.test.beam4.json
speechllm export runs/top4r --output runs/top4r-int8 --int8 data.feature_cache_dir=null
speechllm export runs/top4r --output runs/top4r-bf16 data.feature_cache_dir=null
ev corpus10k/dev300.jsonl runs/top4r-int8 pred/top4r-int8.dev300.json decode.num_beams=1
ev corpus10k/test_unseen_voices.jsonl runs/top4r pred/top4r.unseen.beam4.json
echo "end $(date)"
