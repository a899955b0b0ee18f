# after chain3's training: stop chain3 before its float test evaluation, keep its dev300 greedy, then export the run
# to int8 (the checkpoint the package would ship) and score that on test with the config's decoding (4 beams)
cd /work/data/s34; export SPEECHLLM_CACHE=/work/data/s34/models OMP_NUM_THREADS=2
ev() { speechllm evaluate --manifest $1 --checkpoint $2 --json $3 --predictions ${3%.json}.predictions.jsonl --quiet model.dtype=float32 ${@:4} > ${3%.json}.log 2>&1; echo "$3 rc=$? $(date)"; }
until grep -aq "train end" chain3.log; do sleep 10; done
pkill -f "bash chain3.sh"; echo "stopped chain3 $(date)"
sleep 5; while pgrep -f "evaluate --manifest corpus10k/dev300.jsonl --checkpoint runs/top4s" > /dev/null; do sleep 5; done
echo "dev300 done $(date)"
speechllm export runs/top4s --output runs/top4s-int8 --int8
ev corpus10k/test.jsonl runs/top4s-int8 pred/top4s-int8.test.beam4.json
echo "end $(date)"
