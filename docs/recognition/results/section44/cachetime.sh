# the feature cache's fill time with and without the finished cache, on 3,000 of corpus30k's training utterances
# (after2.sh's try gave the manifest outside the corpus folder, so its audio paths did not resolve)
cd /work/data/s35
while pgrep -f "s36/after2.sh" > /dev/null; do sleep 5; done
export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
for mode in trim both; do
  rm -rf s36/cache_$mode s36/run_$mode
  if [ $mode = trim ]; then steps="train.encoder_steps=0 train.ctc_only_steps=1 train.max_steps=1"
  else steps="train.encoder_steps=1 train.ctc_only_steps=2 train.max_steps=2"; fi
  t0=$(date +%s)
  speechllm train --manifest corpus30k/sub3000.jsonl --config /work/main/configs/offline-cpu.yaml --output s36/run_$mode \
      data.feature_cache_dir=s36/cache_$mode train.eval_every=0 $steps > s36/cache_$mode.log 2>&1
  echo "cache $mode rc=$? secs=$(( $(date +%s)-t0 )) $(date)"
done
