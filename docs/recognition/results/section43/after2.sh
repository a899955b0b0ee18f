# the int8 export (the checkpoint the package would ship) on test, then test_unseen_voices, with the config's decoding
cd /work/data/s35; export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
ev() { speechllm evaluate --manifest $1 --checkpoint $2 --json $3 --predictions ${3%.json}.predictions.jsonl --quiet model.dtype=float32 ${@:4} > ${3%.json}.log 2>&1; echo "$3 rc=$? $(date)"; }
echo "start $(date)"
ev corpus10k/test.jsonl runs/enc1300-ship pred/enc1300-int8.test.beam4.json
ev corpus10k/test_unseen_voices.jsonl runs/enc1300-ship pred/enc1300-int8.unseen.beam4.json
echo "end $(date)"
