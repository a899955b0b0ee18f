# continues after.sh (stopped after its test evaluation, for time): the feature cache's fill time with and without
# the finished cache on 3,000 of corpus30k's training utterances, then the ~1-minute recordings (test_unseen_voices:
# not run, for the session's time)
cd /work/data/s35
while [ ! -f pred/enc0-int8.test.beam4.json ]; do sleep 10; done
export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
ev() { speechllm evaluate --manifest $1 --checkpoint $2 --json $3 --predictions ${3%.json}.predictions.jsonl --quiet model.dtype=float32 ${@:4} > ${3%.json}.log 2>&1; echo "$3 rc=$? $(date)"; }
echo "start $(date)"
for mode in trim both; do
  rm -rf s36/cache_$mode s36/run_$mode
  if [ $mode = trim ]; then steps="train.encoder_steps=0 train.ctc_only_steps=1 train.max_steps=1"
  else steps="train.encoder_steps=1 train.ctc_only_steps=2 train.max_steps=2"; fi
  t0=$(date +%s)
  speechllm train --manifest s36/sub3000.jsonl --config /work/main/configs/offline-cpu.yaml --output s36/run_$mode \
      data.feature_cache_dir=s36/cache_$mode train.eval_every=0 $steps > s36/cache_$mode.log 2>&1
  echo "cache $mode rc=$? secs=$(( $(date +%s)-t0 )) $(date)"
done
python /work/main/scripts/long_recording.py --manifest corpus10k/test.jsonl --checkpoint runs/enc0-ship --out s36/long \
    --json pred/enc0-int8.long_recording.beam4.json model.dtype=float32 > pred/enc0-int8.long_recording.log 2>&1
echo "long rc=$? $(date)"
echo "end $(date)"
