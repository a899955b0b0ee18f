cd /work/data/s35
while ! grep -q corpus30k times.log 2>/dev/null; do sleep 5; done
export SPEECHLLM_CACHE=/work/data/s35/models
t0=$(date +%s)
speechllm train --manifest corpus30k/train_max5s.jsonl --dev-manifest corpus30k/dev96mix.jsonl \
    --config /work/main/configs/offline-cpu.yaml --output runs/enc1300 data.feature_cache_dir=cache \
    train.ctc_only_steps=3100 train.encoder_steps=1300 train.max_steps=3900 > runs/enc1300.log 2>&1
echo "train rc=$? secs=$(( $(date +%s)-t0 )) end=$(date)" >> times.log
