# after section 44's run: dev300 (greedy, float32) paired against section 43's run; the int8 export on test and
# test_unseen_voices (4 beams, the config's decoding) and the ~1-minute recordings; then the feature cache's fill
# time with and without the finished cache, on 3,000 of corpus30k's training utterances
cd /work/data/s35
while ! grep -q "train enc0" times.log 2>/dev/null; do sleep 20; done
export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
ev() { speechllm evaluate --manifest $1 --checkpoint $2 --json $3 --predictions ${3%.json}.predictions.jsonl --quiet model.dtype=float32 ${@:4} > ${3%.json}.log 2>&1; echo "$3 rc=$? $(date)"; }
echo "start $(date)"
ev corpus10k/dev300.jsonl runs/enc0 pred/enc0.dev300.json decode.num_beams=1
python /work/main/docs/recognition/paired_wer.py pred/enc1300.dev300.predictions.jsonl pred/enc0.dev300.predictions.jsonl \
    --json pred/paired_enc1300_vs_enc0.dev300.json > pred/paired_enc1300_vs_enc0.dev300.txt 2>&1
speechllm export runs/enc0 --output runs/enc0-ship --int8 data.feature_cache_dir=null > runs/enc0-ship.log 2>&1
echo "export rc=$? $(date)"
ev corpus10k/test.jsonl runs/enc0-ship pred/enc0-int8.test.beam4.json
ev corpus10k/test_unseen_voices.jsonl runs/enc0-ship pred/enc0-int8.unseen.beam4.json
python /work/main/scripts/long_recording.py --manifest corpus10k/test.jsonl --checkpoint runs/enc0-ship --out s36/long \
    --json pred/enc0-int8.long_recording.beam4.json model.dtype=float32 > pred/enc0-int8.long_recording.log 2>&1
echo "long rc=$? $(date)"
for mode in trim both; do
  rm -rf s36/cache_$mode s36/run_$mode
  if [ $mode = trim ]; then steps="train.encoder_steps=0 train.ctc_only_steps=1 train.max_steps=1"
  else steps="train.encoder_steps=1 train.ctc_only_steps=2 train.max_steps=2"; fi
  t0=$(date +%s)
  speechllm train --manifest s36/sub3000.jsonl --config /work/main/configs/offline-cpu.yaml --output s36/run_$mode \
      data.feature_cache_dir=s36/cache_$mode train.eval_every=0 $steps > s36/cache_$mode.log 2>&1
  echo "cache $mode rc=$? secs=$(( $(date +%s)-t0 )) $(date)"
done
echo "end $(date)"
