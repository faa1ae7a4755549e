#!/usr/bin/env bash
# The default model from nothing: sharp photographs, synthetic pairs, training (the recipe nafft-photo reads
# data/default/...). Every step resumes: pairs already made are kept, an interrupted training continues.
#   scripts/default_model.sh [RUN_DIR]            (default runs/nafft-photo)
# Then: benchmarks/default_model.py quality/speed, and scripts/ship_default_model.py to bundle the weights.
# CPU: NAFFT_THREADS (default 1) torch threads for training; the pair synthesis uses 2 processes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=data/default
RUN=${1:-runs/nafft-photo}
PY=${PY:-.venv/bin/python}
NAFFT=${NAFFT:-.venv/bin/nafft}
THREADS=${NAFFT_THREADS:-1}

[ -d "$DATA/photos/test" ] || "$PY" scripts/sharp_photos.py "$DATA/photos"
synth() { "$NAFFT" synth --workers 2 "$@"; }
# training and validation pairs: the realistic generator (nafft synth's defaults)
synth --source "$DATA/photos/train" --count 3000 --size 256 --seed 1000 -o "$DATA/train_photos"
synth --source deadleaves --count 1500 --size 256 --seed 1001 -o "$DATA/train_leaves"
synth --source "$DATA/photos/val" --count 24 --size 256 --seed 1002 -o "$DATA/val"
# held-out photographs: the independent shake generator, the training generator, sharp camera images, and the
# sharp photographs themselves
synth --source "$DATA/photos/val" --count 24 --size 256 --seed 1003 --blur shake -o "$DATA/val_shake"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2000 --blur shake -o "$DATA/test_shake"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2001 -o "$DATA/test_realistic"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2002 --blur shake --strength 0 -o "$DATA/test_sharp"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2002 --blur shake --strength 0 --noise 0 \
    -o "$DATA/test_clean"

"$NAFFT" train -c nafft-photo -o "$RUN" --resume --threads "$THREADS"
