#!/usr/bin/env bash
# The default model from nothing: sharp photographs, synthetic pairs, training, evaluation.
#   scripts/default_model.sh [DATA_DIR] [RUN_DIR]        (defaults: data/default, runs/nafft-photo)
# Every step resumes: pairs already made are kept, an interrupted training continues (--resume).
# CPU: NAFFT_THREADS (default 1) threads for training; the pair synthesis uses 2 processes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-data/default}
RUN=${2:-runs/nafft-photo}
PY=${PY:-.venv/bin/python}
NAFFT=${NAFFT:-.venv/bin/nafft}
THREADS=${NAFFT_THREADS:-1}

[ -d "$DATA/photos/test" ] || "$PY" scripts/sharp_photos.py "$DATA/photos"
synth() { "$NAFFT" synth --workers 2 "$@"; }
# training and validation pairs: the realistic generator (nafft synth's defaults)
synth --source "$DATA/photos/train" --count 3000 --size 256 --seed 1000 -o "$DATA/train_photos"
synth --source deadleaves --count 1500 --size 256 --seed 1001 -o "$DATA/train_leaves"
synth --source "$DATA/photos/val" --count 24 --size 256 --seed 1002 -o "$DATA/val"
# held-out photographs: the independent shake generator, the training generator, and sharp camera images
synth --source "$DATA/photos/val" --count 24 --size 256 --seed 1003 --blur shake -o "$DATA/val_shake"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2000 --blur shake -o "$DATA/test_shake"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2001 -o "$DATA/test_realistic"
synth --source "$DATA/photos/test" --count 42 --size 384 --seed 2002 --blur shake --strength 0 -o "$DATA/test_sharp"

OMP_NUM_THREADS=$THREADS "$NAFFT" train -c configs/nafft-photo.yaml --out "$RUN" --resume \
    --set data.train="[$DATA/train_photos,$DATA/train_leaves]" data.val="$DATA/val"
