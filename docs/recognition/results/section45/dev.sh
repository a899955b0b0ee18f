# section 45: long recordings made of DEV utterances (4 a language of 14 utterances each, 0.5 s pauses), chunking
# variants name:chunk_seconds:edge (edge -1: pieces as cut, untrimmed; the monkeypatched trim in longdev.py); then
# single dev utterances with 0.3 s of silence added at both ends; run with the shipped checkpoint's twin (runs/enc0-ship,
# the int8 export of section 44's run), 4 beams, float32, alone on both cores
cd /work/data/s35; export SPEECHLLM_CACHE=/work/data/s35/models OMP_NUM_THREADS=2
S=/work/main/docs/recognition/results/section45
# before the package change (main at 1d93a5b)
python $S/longdev.py runs/enc0-ship 4 base:6:-1,trim:6:0.1,c3:3:-1,c3trim:3:0.1,c4trim:4:0.1 > longdev.log
python $S/longdev.py runs/enc0-ship 4 trim05:6:0.05,trim20:6:0.2,c8trim:8:0.1 > longdev2.log
python $S/leadsil.py runs/enc0-ship 0,0.3 > leadsil.log
python $S/longdev.py runs/enc0-ship 4 trim0:6:0.0,c8t05:8:0.05 > longdev3.log
# after it (data/chunking.py: EDGE_SECONDS = 0.05 for every piece); pkg:6:-1 is the package's own cutting
python $S/longdev.py runs/enc0-ship 4 pkg:6:-1 > longdev4.log
python $S/leadsil.py runs/enc0-ship 0,0.3 > leadsil2.log
# the test measurement of the issue, once, after the choice
python /work/main/scripts/long_recording.py --manifest corpus10k/test.jsonl --checkpoint runs/enc0-ship --out long \
    --json long_recording.json model.dtype=float32 > long_recording.log
