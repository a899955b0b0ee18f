# session 13: int8 export of top4r (size, dev300 greedy), then the four-layer recipe with 4,800 frozen CTC-only steps
# (instead of 7,000) from section 40's corpus and feature caches, then its dev300 greedy and test with 4 beams.
cd /work/data/s34; export SPEECHLLM_CACHE=/work/data/s34/models OMP_NUM_THREADS=2
ev() { speechllm evaluate --manifest $1 --checkpoint $2 --json $3 --predictions ${3%.json}.predictions.jsonl --quiet model.dtype=float32 ${@:4} > ${3%.json}.log 2>&1; echo "$3 rc=$? $(date)"; }
echo "start $(date)"
[ -e runs/top4r-int8 ] || speechllm export runs/top4r --output runs/top4r-int8 --int8
[ -e runs/top4r-bf16 ] || speechllm export runs/top4r --output runs/top4r-bf16
du -sh runs/top4r-int8 runs/top4r-bf16
[ -e pred/top4r-int8.dev300.json ] || ev corpus10k/dev300.jsonl runs/top4r-int8 pred/top4r-int8.dev300.json decode.num_beams=1 --wer-only
echo "train start $(date +%s) $(date)"
if [ -e runs/top4s/checkpoint ] || [ -e runs/top4s/state ]; then
  speechllm train --manifest corpus30k/train_max5s.jsonl --dev-manifest corpus30k/dev96mix.jsonl --output runs/top4s --resume
else
  speechllm train --manifest corpus30k/train_max5s.jsonl --dev-manifest corpus30k/dev96mix.jsonl \
    --config /work/main/configs/offline-cpu.yaml --output runs/top4s data.feature_cache_dir=/work/data/s34/cache \
    model.encoder_train_layers=4 train.encoder_steps=600 train.lr_encoder=1e-4 train.ctc_only_steps=5400 train.max_steps=6200
fi
echo "train end rc=$? $(date +%s) $(date)"
ev corpus10k/dev300.jsonl runs/top4s pred/top4s.dev300.json decode.num_beams=1
ev corpus10k/test.jsonl runs/top4s pred/top4s.test.beam4.json
echo "end $(date)"
