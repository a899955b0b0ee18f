# section 48: the issue's ~1-minute recordings (14 test utterances a language, 0.5 s pauses) for seeds 1 and 2, as
# section 45 measured the shipped checkpoint (seed 0): int8 exports, the config's decoding (4 beams), float32, alone
cd /work/data/s35; export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
for s in 1 2; do
  python /work/main/scripts/long_recording.py --manifest corpus10k/test.jsonl --checkpoint runs/enc0s$s-ship \
      --out /work/data/s37/long_s$s --json pred/enc0s$s-int8.long_recording.beam4.json model.dtype=float32 \
      > pred/enc0s$s-int8.long_recording.log 2>&1
  echo "long seed $s rc=$? $(date)" >> times.log
done
