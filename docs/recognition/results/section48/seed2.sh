# section 48: configs/offline-cpu.yaml as it stands (section 44), a third seed; then its int8 export on test with the
# config's decoding (4 beams), as sections 44 and 46 scored seeds 0 and 1; then test_unseen_voices for seeds 1 and 2
cd /work/data/s35
export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
ev() { speechllm evaluate --manifest $1 --checkpoint $2 --json $3 --predictions ${3%.json}.predictions.jsonl --quiet model.dtype=float32 ${@:4} > ${3%.json}.log 2>&1; echo "$3 rc=$? $(date)" >> times.log; }
t0=$(date +%s)
speechllm train --manifest corpus30k/train_max5s.jsonl --dev-manifest corpus30k/dev96mix.jsonl \
    --config /work/main/configs/offline-cpu.yaml --output runs/enc0s2 data.feature_cache_dir=cache \
    train.seed=2 > runs/enc0s2.log 2>&1
echo "train enc0s2 rc=$? secs=$(( $(date +%s)-t0 )) end=$(date)" >> times.log
speechllm export runs/enc0s2 --output runs/enc0s2-ship --int8 data.feature_cache_dir=null >> runs/enc0s2.log 2>&1
ev corpus10k/test.jsonl runs/enc0s2-ship pred/enc0s2-int8.test.beam4.json --wer-only
ev corpus10k/test_unseen_voices.jsonl runs/enc0s1-ship pred/enc0s1-int8.unseen.beam4.json --wer-only
ev corpus10k/test_unseen_voices.jsonl runs/enc0s2-ship pred/enc0s2-int8.unseen.beam4.json --wer-only
