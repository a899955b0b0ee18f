# test_unseen_voices with the shipped checkpoint (4 beams, float32, WER only), after the local CI run
cd /work/data/s35
while ! grep -q "^rc=" /tmp/ci.log; do sleep 5; done
export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
speechllm evaluate --manifest corpus10k/test_unseen_voices.jsonl --checkpoint runs/enc0-ship \
    --json pred/enc0-int8.unseen.beam4.json --predictions pred/enc0-int8.unseen.beam4.predictions.jsonl --quiet \
    --wer-only model.dtype=float32 > pred/enc0-int8.unseen.beam4.log 2>&1
echo "unseen rc=$? $(date)"
