#!/usr/bin/env bash
# Rebuild the built-in conveyor models and their evaluation report, reproducibly:
#   simulate -> train (classifier, teacher) -> export FP32 -> quantize INT8 -> evaluate.
#
# Data goes to ~/.cache/edgeloop/data/conveyor (base + one set per drift condition),
# runs to ~/.cache/edgeloop/build/conveyor; packages land in pipeline/modelpkg/builtin/
# and the report in docs/models/conveyor/. Needs the train extra (torch).
# The edge classifier always trains on the CPU (about 23 minutes on a shared 2-core
# machine). The teacher trains on CUDA when torch sees a GPU (about 2.5 minutes on one
# H200, which made the committed teacher 1.1.0), else on the CPU: 1.5 minutes an epoch
# on 2 free cores, about an hour for its 40 epochs.
#
# Environment: PYTHON (default .venv/bin/python), VERSION (package version of the
# edge packages, 1.0.0), TEACHER_VERSION (1.1.0), COUNT (base images, 10000), SIZE
# (frame width of the dataset, 160), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
VERSION=${VERSION:-1.0.0}
TEACHER_VERSION=${TEACHER_VERSION:-1.1.0}
COUNT=${COUNT:-10000}
SIZE=${SIZE:-160}
DATA=${HOME}/.cache/edgeloop/data/conveyor
WORK=${HOME}/.cache/edgeloop/build/conveyor
BUILTIN=pipeline/modelpkg/builtin
REPORT=docs/models/conveyor
export OMP_NUM_THREADS=${THREADS:-2}
el() { "$PY" -m pipeline.cli.main "$@"; }
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)" >&2; }
start=$(date +%s)

step "simulate: in-distribution data and one set per drift condition"
rm -rf "$DATA" "$WORK"
el edge simulate conveyor --out "$DATA/base" --count "$COUNT" --seed 0 --size "$SIZE"
seed=100
for cond in dim_light color_cast new_finish camera_shift; do
    el edge simulate conveyor --out "$DATA/$cond" --count 600 --seed "$seed" \
        --condition "$cond" --size "$SIZE"
    seed=$((seed + 1))
done

step "train the edge classifier: 14 epochs, then 6 more from those weights (lower LR)"
el models train --task classifier --data "$DATA/base" --out "$WORK/run-classifier" \
    --epochs 14 --seed 0
el models train --task classifier --data "$DATA/base" --out "$WORK/run-classifier" \
    --epochs 6 --seed 1
step "train the teacher: 40 epochs from scratch in one sitting (one-cycle LR)"
el models train --task teacher --data "$DATA/base" --out "$WORK/run-teacher" --epochs 40 --seed 0

step "export FP32 packages"
el models export --run "$WORK/run-classifier" --out "$BUILTIN/conveyor-fp32" --version "$VERSION"
el models export --run "$WORK/run-teacher" --out "$BUILTIN/conveyor-teacher" \
    --version "$TEACHER_VERSION"

step "quantize to INT8 (auto: every calibration method, keep the best on val)"
el models quantize --package "$BUILTIN/conveyor-fp32" --data "$DATA/base" \
    --out "$BUILTIN/conveyor-int8" --method auto

step "drift reference: score distribution on frames at the cameras' 640x480 (the cloud's PSI)"
[ -d "$DATA/ref640" ] || el edge simulate conveyor --out "$DATA/ref640" --count 8000 --size 640 \
    --seed 101
el models reference "$BUILTIN/conveyor-fp32" --data "$DATA/ref640" --split val
el models reference "$BUILTIN/conveyor-int8" --data "$DATA/ref640" --split val

step "evaluate: test split and every drift condition"
el models evaluate --package "$BUILTIN/conveyor-fp32" --package "$BUILTIN/conveyor-int8" \
    --package "$BUILTIN/conveyor-teacher" --data "$DATA" --out "$REPORT"

step "done in $(( ($(date +%s) - start) / 60 )) min; report: $REPORT/report.md"
