# the LLM's forgetting with section 43's shipped run (800 joint steps at 1e-3 after Whisper's top four layers):
# perplexity on Debian Reference prose and held-out fortunes, against the base SmolLM2-135M (float32, one thread)
mkdir -p forget/RUNS && cd forget && apt-get download debian-reference-en debian-reference-de
ln -sfn /work/data/s35/runs/enc1300 RUNS/enc1300
OMP_NUM_THREADS=1 python /work/main/docs/comparison/other_genre_forgetting.py --debs debian-reference-*.deb \
    --runs RUNS --json forgetting.json --dtype float32
