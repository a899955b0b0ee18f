# after train.sh: dev300 greedy for the candidate and the shipped checkpoint (section 42's run, int8) side by side,
# one core each; then the candidate on test and test_unseen_voices with the config's decoding (4 beams), two threads
cd /work/data/s35; export SPEECHLLM_CACHE=/work/data/s35/models
ev() { speechllm evaluate --manifest $1 --checkpoint $2 --json $3 --predictions ${3%.json}.predictions.jsonl --quiet model.dtype=float32 ${@:4} > ${3%.json}.log 2>&1; echo "$3 rc=$? $(date)"; }
until grep -q "train rc" times.log; do sleep 10; done
echo "start $(date)"
OMP_NUM_THREADS=1 ev corpus10k/dev300.jsonl runs/enc1300 pred/enc1300.dev300.json decode.num_beams=1 &
OMP_NUM_THREADS=1 ev corpus10k/dev300.jsonl /work/main/speechllm/resources/offline-cpu pred/shipped42.dev300.json decode.num_beams=1 &
wait
python /work/main/docs/recognition/paired_wer.py pred/shipped42.dev300.predictions.jsonl pred/enc1300.dev300.predictions.jsonl --json pred/paired_shipped42_vs_enc1300.dev300.json
export OMP_NUM_THREADS=2
ev corpus10k/test.jsonl runs/enc1300 pred/enc1300.test.beam4.json
ev corpus10k/test_unseen_voices.jsonl runs/enc1300 pred/enc1300.unseen.beam4.json
echo "end $(date)"
