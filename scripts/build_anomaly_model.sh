#!/usr/bin/env bash
# Rebuild the built-in machine anomaly model packages from simulator data:
#   simulate -> train -> export (FP32) -> quantize (INT8) -> evaluate
# into pipeline/modelpkg/builtin/machine-anomaly-{fp32,int8}/ and docs/models/machine/.
# Same seed, same data and same weights (training runs on one CPU thread).
#
#   scripts/build_anomaly_model.sh               # defaults below
#   SECONDS_PER_SPLIT=120 scripts/build_anomaly_model.sh   # quicker, for a try
set -euo pipefail
cd "$(dirname "$0")/.."

EDGELOOP=${EDGELOOP:-.venv/bin/edgeloop}
DATA=${DATA:-$HOME/.cache/edgeloop/data/machine}
RUN=${RUN:-$HOME/.cache/edgeloop/runs/machine-anomaly}
SECONDS_PER_SPLIT=${SECONDS_PER_SPLIT:-600}
SEED=${SEED:-0}
VERSION=${VERSION:-1.0.0}
OUT=pipeline/modelpkg/builtin
REPORT=docs/models/machine

start=$(date +%s)
step() { echo "== $* ($(($(date +%s) - start)) s)"; }

step "simulate ${SECONDS_PER_SPLIT} s per split -> $DATA"
rm -rf "$DATA"
"$EDGELOOP" edge simulate machine --out "$DATA" --seconds "$SECONDS_PER_SPLIT" --seed "$SEED"

step "train -> $RUN"
rm -rf "$RUN"
"$EDGELOOP" models train --task anomaly --data "$DATA" --out "$RUN" --seed "$SEED"

step "export FP32 -> $OUT/machine-anomaly-fp32"
"$EDGELOOP" models export --run "$RUN" --out "$OUT/machine-anomaly-fp32" --version "$VERSION"

step "quantize INT8 -> $OUT/machine-anomaly-int8"
# onnxruntime's calibrators print their progress on stdout; keep only our summary.
"$EDGELOOP" models quantize --package "$OUT/machine-anomaly-fp32" --data "$DATA" \
    --out "$OUT/machine-anomaly-int8" --method auto | grep -v -e '^Collecting' -e '^Finding' \
    -e '^Number of' -e '^Percentile' || true
test -f "$OUT/machine-anomaly-int8/manifest.json"

step "evaluate -> $REPORT"
"$EDGELOOP" models evaluate --package "$OUT/machine-anomaly-fp32" \
    --package "$OUT/machine-anomaly-int8" --data "$DATA" --out "$REPORT"

step "done"
ls -l "$OUT"/machine-anomaly-*/ "$REPORT"
