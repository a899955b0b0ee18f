# section 46, after seed1.sh's test evaluation: stop seed1.sh before its test_unseen_voices evaluation (no time this
# session) and score section 44's seed-0 export on test again with the package's new cutting (pieces cut to their
# speech), WER only, so the two seeds compare alike; then the local CI run, alone
cd /work/data/s35; export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
until grep -q "enc0s1-int8.test.beam4.json rc=" times.log; do sleep 20; done
pkill -f -- "--manifest corpus10k/test_unseen_voices.jsonl --checkpoint runs/enc0s1-ship"; pkill -f section46/seed1.sh
sleep 5; pkill -f -- "--manifest corpus10k/test_unseen_voices.jsonl --checkpoint runs/enc0s1-ship"
speechllm evaluate --manifest corpus10k/test.jsonl --checkpoint runs/enc0-ship --json pred/enc0-int8.test.beam4.edges.json \
    --predictions pred/enc0-int8.test.beam4.edges.predictions.jsonl --quiet model.dtype=float32 --wer-only \
    > pred/enc0-int8.test.beam4.edges.log 2>&1
echo "pred/enc0-int8.test.beam4.edges.json rc=$? $(date)" >> times.log
