#!/usr/bin/env bash
# The default model from nothing: sharp photographs, synthetic pairs, training (the recipe nafft-photo reads
# data/default/...). Every step resumes: pairs already made are kept, an interrupted training continues.
#   scripts/default_model.sh [RUN_DIR]            (stage 1, default runs/nafft-photo; stages 2 and 3 in
#                                                  runs/nafft-photo-stage2 and -stage3, where their recipes look)
# Then: benchmarks/default_model.py quality/speed, and scripts/ship_default_model.py to bundle the weights
# (docs/default-model.md has the commands behind the shipped card).
# CPU: NAFFT_THREADS (default 1) torch threads for training; the pair synthesis uses 2 processes.
# GPU: NAFFT_GPU=1 (make default-model-gpu) synthesises with one process per core and trains the recipe
# nafft-photo-gpu (at most 7.5 minutes) warm-started from the bundled weights, then scores the new EMA weights
# (RUN/checkpoints/last_ema.safetensors, the one file to keep) into RUN/quality. On a machine without internet,
# bring DATA/photos along (scripts/sharp_photos.py downloads Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=data/default
RUN=${1:-runs/nafft-photo}
PY=${PY:-.venv/bin/python}
NAFFT=${NAFFT:-.venv/bin/nafft}
THREADS=${NAFFT_THREADS:-1}
GPU=${NAFFT_GPU:-0}
STAGE4=${NAFFT_STAGE4:-0}
STAGE5=${NAFFT_STAGE5:-0}
WORKERS=2
[ "$GPU" = 1 ] && WORKERS=$(nproc)

[ -d "$DATA/photos/test" ] || "$PY" scripts/sharp_photos.py "$DATA/photos"
synth() { "$NAFFT" synth --workers "$WORKERS" "$@"; }
# training and validation pairs: the realistic generator with the settings the shipped model was trained with
# (input defocus on 20% of the pairs, no out-of-focus scenes). A continuation on nafft synth's present defaults
# (--defocus 0 --soft 0.25) was measured and not shipped: docs/default-model.md.
TRAIN_BLUR=(--defocus 0.2 --soft 0)
synth --source "$DATA/photos/train" --count 3000 --size 256 --seed 1000 "${TRAIN_BLUR[@]}" -o "$DATA/train_photos"
synth --source deadleaves --count 1500 --size 256 --seed 1001 "${TRAIN_BLUR[@]}" -o "$DATA/train_leaves"
synth --source "$DATA/photos/val" --count 24 --size 256 --seed 1002 "${TRAIN_BLUR[@]}" -o "$DATA/val"
# held-out photographs: the independent shake generator, the training generator, sharp camera images, and the
# sharp photographs themselves
synth --source "$DATA/photos/val" --count 24 --size 256 --seed 1003 --blur shake -o "$DATA/val_shake"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2000 --blur shake -o "$DATA/test_shake"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2001 -o "$DATA/test_realistic"
# the demo's held-out photographs, blurred as `nafft demo` blurs its test set
mkdir -p "$DATA/photos/demo"
cp "$DATA/photos/test/chelsea.png" "$DATA/photos/test/coffee.png" "$DATA/photos/test/rocket.jpg" "$DATA/photos/demo/"
synth --source "$DATA/photos/demo" --count 12 --size 256 --seed 4 -o "$DATA/demo_test_photos"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2002 --blur shake --strength 0 -o "$DATA/test_sharp"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2002 --blur shake --strength 0 --noise 0 \
    -o "$DATA/test_clean"

# stage 2 ("first do no harm", docs/trust.md): scenes with wide depth of field and bokeh in input and target, still
# pairs down to nearly no noise, blur lengths log-uniform over 1-48 px; and the held-out suite judged image by image
TRUST=(--still 0.2 --long-motion 0.15 --log-uniform 0.7 --soft 0.45 --soft-radius 1-32 --bokeh 0.5 --noise-gain 0.01-4
       --defocus 0)
synth --source "$DATA/photos/train" --count 2400 --size 256 --seed 3000 "${TRUST[@]}" -o "$DATA/trust_photos"
synth --source deadleaves --count 800 --size 256 --seed 3001 "${TRUST[@]}" -o "$DATA/trust_leaves"
synth --source "$DATA/photos/val" --count 32 --size 256 --seed 3002 "${TRUST[@]}" -o "$DATA/trust_val"
# stage 3: identity pairs (a sharp scene at low noise, mostly without JPEG, is its own target)
IDENTITY=(--still 1.0 --long-motion 0 --soft 0.45 --soft-radius 1-32 --bokeh 0.5 --noise-gain 0.005-0.5 --defocus 0
          --jpeg 0.25 --jpeg-quality 85-95)
synth --source "$DATA/photos/train" --count 800 --size 256 --seed 3010 "${IDENTITY[@]}" -o "$DATA/identity_photos"
synth --source deadleaves --count 200 --size 256 --seed 3011 "${IDENTITY[@]}" -o "$DATA/identity_leaves"
# stage 4 (measured, not shipped; NAFFT_STAGE4=1): identity pairs of wholly soft scenes, and random-walk shake
# kernels as a second blur family
SOFT_IDENTITY=(--still 1.0 --long-motion 0 --soft 1.0 --soft-radius 0.7-12 --bokeh 0.3 --noise-gain 0.005-0.5
               --defocus 0 --jpeg 0.25 --jpeg-quality 85-95)
if [ "$STAGE4" = 1 ]; then
    synth --source "$DATA/photos/train" --count 800 --size 256 --seed 3020 "${SOFT_IDENTITY[@]}" \
        -o "$DATA/identity_soft"
    synth --source "$DATA/photos/train" --count 1600 --size 256 --seed 3021 --blur shake -o "$DATA/shake_photos"
    synth --source deadleaves --count 400 --size 256 --seed 3022 --blur shake -o "$DATA/shake_leaves"
fi
# stage 5 (a candidate; NAFFT_STAGE5=1): stage 3's identity pairs cut from the training photographs near their own
# resolution (down-scaled 1-1.5 times), where they are soft in themselves
if [ "$STAGE5" = 1 ]; then
    synth --source "$DATA/photos/train" --count 800 --size 256 --seed 3030 "${IDENTITY[@]}" --downscale 1-1.5 \
        -o "$DATA/identity_native"
fi
"$PY" benchmarks/heldout_sets.py "$DATA/photos/test" --out "$DATA/heldout"
"$PY" benchmarks/heldout_sets.py "$DATA/photos/val" --out "$DATA/heldout-val" --views 6

if [ "$GPU" != 1 ]; then
    # stage 1: the EMA weights at iteration 8,500 of the recipe's 24,000-iteration schedule, kept in
    # weights/nafft-photo-stage1.safetensors; --set train.stop_at=0 with --resume trains on to the schedule's end
    "$NAFFT" train -c nafft-photo -o "$RUN" --resume --threads "$THREADS" --set train.stop_at=8500
    # stage 2 starts from the kept stage-1 weights (recipe nafft-photo-stage2, model.init) and stops at 3,000;
    # stage 3 starts from its EMA weights there (recipe nafft-photo-stage3): the shipped weights
    "$NAFFT" train -c nafft-photo-stage2 -o runs/nafft-photo-stage2 --resume --threads "$THREADS" \
        --set train.stop_at=3000
    "$NAFFT" train -c nafft-photo-stage3 -o runs/nafft-photo-stage3 --resume --threads "$THREADS"
    # stage 4 (measured, not shipped: docs/trust.md), from stage 3's last EMA weights, stopped at 12,000 of its
    # 14,000 iterations; NAFFT_STAGE4=1 trains it too
    if [ "$STAGE4" = 1 ]; then
        "$NAFFT" train -c nafft-photo-stage4 -o runs/nafft-photo-stage4 --resume --threads "$THREADS" \
            --set train.stop_at=12000
    fi
    # stage 5 (a candidate: docs/trust.md), from stage 3's last EMA weights; NAFFT_STAGE5=1 trains it
    if [ "$STAGE5" = 1 ]; then
        "$NAFFT" train -c nafft-photo-stage5 -o runs/nafft-photo-stage5 --resume --threads "$THREADS"
    fi
    # the strength guard of the shipped weights (--strength auto, docs/trust.md): fresh pairs of the stage-2/3 kinds
    # and of random-walk shake, and sharp and shaken views of the training photographs made as the held-out suite
    # makes its own (nafft's camera paths only: the suite's tremor kernels stay unseen); restorations and
    # measurements are cached in runs/guard/cache, the guard is written to runs/guard/nafft-photo.safetensors; its
    # strength is capped at 0.75 (--ceiling: the decision rule's choice among the scored candidates, docs/trust.md)
    G=$DATA/guard
    synth --source "$DATA/photos/train" --count 600 --size 256 --seed 3100 "${TRUST[@]}" -o "$G/trust"
    synth --source "$DATA/photos/train" --count 300 --size 256 --seed 3110 "${IDENTITY[@]}" -o "$G/identity"
    synth --source "$DATA/photos/train" --count 300 --size 256 --seed 3120 "${SOFT_IDENTITY[@]}" -o "$G/soft"
    synth --source "$DATA/photos/train" --count 400 --size 256 --seed 3121 --blur shake -o "$G/shake"
    synth --source deadleaves --count 150 --size 256 --seed 3101 "${TRUST[@]}" -o "$G/trust_leaves"
    synth --source deadleaves --count 100 --size 256 --seed 3111 "${IDENTITY[@]}" -o "$G/identity_leaves"
    VIEW_SETS=(sharp-low sharp-noisy sharp-dof-synth nafft-0.5-3 nafft-3-9 nafft-9-17 nafft-17-33)
    [ -d "$DATA/guard-views/nafft-17-33" ] || "$PY" benchmarks/heldout_sets.py "$DATA/photos/train" \
        --out "$DATA/guard-views" --views 12 --seed 11 --sets "${VIEW_SETS[@]}"
    PAIRS=()
    for f in trust identity soft shake trust_leaves identity_leaves; do PAIRS+=(--pairs "$G/$f"); done
    for f in "${VIEW_SETS[@]}"; do PAIRS+=(--pairs "$DATA/guard-views/$f"); done
    VALS=()
    for f in "$DATA"/heldout-val/*/; do VALS+=(--val "$(basename "$f")=${f%/}"); done
    "$PY" scripts/train_guard.py --model nafft-photo "${PAIRS[@]}" \
        "${VALS[@]}" --crops 1 --ceiling 0.75 --threads 2 --cache-dir runs/guard/cache \
        --out runs/guard/nafft-photo.safetensors \
        --history runs/guard/nafft-photo.json
    exit 0
fi
"$NAFFT" train -c nafft-photo-gpu -o "$RUN" --resume --init src/nafft/weights/nafft-photo.safetensors --no-progress
"$PY" benchmarks/default_model.py quality --checkpoint "$RUN/checkpoints/last_ema.safetensors" --out "$RUN/quality" \
    --suite "$DATA/heldout"
