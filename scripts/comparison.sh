#!/usr/bin/env bash
# The strategy comparison (issue 14) from nothing, in one command: the synthetic corpus, one shared CTC-only
# warm-up of the adaptor (the recipe's first phase; it trains no LLM tensor), then every strategy x 3 seeds of the
# recipe's joint phase from that warm-up, scored on 150 test and 150 unseen-voice utterances per language with
# the forgetting measure. Results (small JSON, reports, plots) go to docs/comparison/; checkpoints stay in WORK.
#
#   bash scripts/comparison.sh [WORK]        # WORK defaults to runs/comparison
#
# Stop it at any time and run the same command again: the corpus is kept, the warm-up resumes, finished runs are
# skipped and an unfinished one resumes. The warm-up, once trained, is exported (bfloat16, ~8 MB) to
# docs/comparison/ctc-base and committed, so every later session starts its runs from the same adaptor. The joint
# runs compute in float32 (model.dtype=float32) whatever the CPU and decode greedily (decode.num_beams=1), so runs
# made on different machines in different sessions compare. Settings (environment): JOINT_STEPS (300), SEEDS
# ("0 1 2"), STRATEGIES (all seven), RESULTS (docs/comparison), NUM_PARAMS (4000000: the recipe's 30 lowest-kappa
# tensors hold 4,091,904).
set -euo pipefail
WORK=${1:-runs/comparison}
JOINT_STEPS=${JOINT_STEPS:-300}
SEEDS=${SEEDS:-0 1 2}
STRATEGIES=${STRATEGIES:-lowest highest random lora kappa-lora none all}
RESULTS=${RESULTS:-docs/comparison}
NUM_PARAMS=${NUM_PARAMS:-4000000}
CONFIG=configs/offline-cpu.yaml
CORPUS=$WORK/corpus10k
BASE=$RESULTS/ctc-base  # the shared warm-up, committed
# The warm-up's adaptor is the paper's (attention blocks only), trained before the recipe gained its feed-forward
# sublayer and its byte CTC head; the warm-up and every joint run keep it, so all 21 runs share one adaptor.
ADAPTOR=model.adaptor_ffn=0
BYTES=train.byte_ctc_weight=0
# The warm-up ran at batch 8, and the joint runs train the adaptor beside the LLM tensors, as the recipe did when the
# comparison began (since 2026-12-05 it runs its CTC-only steps at batch 32 and freezes the adaptor after them)
WARMUP_BATCH=train.ctc_only_batch_size=0
JOINT_ADAPTOR=train.freeze_adaptor_in_joint=false

mkdir -p "$WORK"
[ -f "$CORPUS/test_unseen_voices.jsonl" ] || speechllm synth --out "$CORPUS" --per-language 10000
python scripts/recipe_data.py "$CORPUS" --test-per-language 150

# the warm-up: the recipe's CTC-only phase as it was when the comparison began (7,000 steps at batch 8 on
# corpus10k), adaptor and CTC head only; trained once, then committed
if [ ! -f "$BASE/checkpoint/complete.json" ]; then
    resume=""
    [ -d "$WORK/ctc-base/checkpoint" ] && resume="--resume"
    speechllm train --manifest "$CORPUS/train_max5s.jsonl" --dev-manifest "$CORPUS/dev96mix.jsonl" \
        --config "$CONFIG" --output "$WORK/ctc-base" $resume selection.strategy=none train.max_steps=7000 \
        train.ctc_only_steps=7000 train.eval_every=1000 "$ADAPTOR" "$BYTES" "$WARMUP_BATCH" "$JOINT_ADAPTOR"
    python -c "import sys; from speechllm.model.checkpoint import export_checkpoint; export_checkpoint(*sys.argv[1:])" \
        "$WORK/ctc-base" "$BASE"
    cp "$WORK/ctc-base/metrics.jsonl" "$BASE/metrics.jsonl"
fi

# the joint phase per strategy and seed, all from the warm-up, one schedule: the adaptor at the rate the recipe's
# cosine has reached where its joint phase begins (~2e-4), the LLM's tensors (or adapters) at 1e-4
compare() {
    python scripts/compare_strategies.py --train "$CORPUS/train_max5s.jsonl" --dev "$CORPUS/dev96mix.jsonl" \
        --test "$CORPUS/test150.jsonl" "$CORPUS/unseen150.jsonl" --config "$CONFIG" --output "$WORK/runs" \
        --results "$RESULTS" --init "$BASE" "$@" --num-params "$NUM_PARAMS" \
        train.ctc_only_steps=0 train.max_steps="$JOINT_STEPS" train.warmup_steps=30 train.lr_adaptor=2e-4 \
        train.lr_llm=1e-4 train.eval_every=100 train.save_every=100 model.dtype=float32 decode.num_beams=1 \
        "$ADAPTOR" "$BYTES" "$JOINT_ADAPTOR"
}
# shellcheck disable=SC2086
compare --strategies $STRATEGIES --seeds $SEEDS
# the report over every finished run of the whole comparison, whichever process or session made it (a process
# given some STRATEGIES or SEEDS reports only its own runs)
compare --strategies lowest highest random lora kappa-lora none all --seeds 0 1 2 --report-only
