# section 44: Whisper's top four layers trained from the first CTC-only step (no frozen steps, no finished cache)
cd /work/data/s35
export SPEECHLLM_CACHE=/work/data/s35/models
t0=$(date +%s)
speechllm train --manifest corpus30k/train_max5s.jsonl --dev-manifest corpus30k/dev96mix.jsonl \
    --config /work/main/configs/offline-cpu.yaml --output runs/enc0 data.feature_cache_dir=cache \
    train.ctc_only_steps=1900 train.encoder_steps=0 train.max_steps=2700 > runs/enc0.log 2>&1
echo "train enc0 rc=$? secs=$(( $(date +%s)-t0 )) end=$(date)" >> times.log
