# issue 10: configs/offline-cpu.yaml with Whisper's top 4 layers trained in the last 600 of 7,600 CTC-only steps,
# then 800 joint steps, from nothing (fresh corpus, model cache and feature cache). Resume: bash recipe.sh --resume
cd /work/data/s34; export SPEECHLLM_CACHE=/work/data/s34/models
echo "start $(date +%s) $(date) $*"
if [ "$1" = "--resume" ]; then
  speechllm train --manifest corpus30k/train_max5s.jsonl --dev-manifest corpus30k/dev96mix.jsonl --output runs/top4r --resume
else
  speechllm synth --out corpus30k --per-language 30000 && python /work/main/scripts/recipe_data.py corpus30k
  echo "corpus $(date +%s) $(date)"
  speechllm train --manifest corpus30k/train_max5s.jsonl --dev-manifest corpus30k/dev96mix.jsonl \
    --config /work/main/configs/offline-cpu.yaml --output runs/top4r data.feature_cache_dir=/work/data/s34/cache \
    model.encoder_train_layers=4 train.encoder_steps=600 train.lr_encoder=1e-4 train.ctc_only_steps=7600 train.max_steps=8400
fi
echo "end rc=$? $(date +%s) $(date)"
