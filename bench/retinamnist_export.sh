#!/usr/bin/env bash
# After bench/retinamnist_runs.sh: export each finished RetinaMNIST run's model (fp32 + int8 ONNX), time it
# with onnxruntime at batch 1 on one thread (RUN/bench.json), and check summary.json against an independent
# onnxruntime evaluation of the fp32 student (bench/retinamnist_check.py). Heavy steps take $LOCK. int8 files
# are kept whatever their top-1 agreement with fp32 (--min-agreement 0: these small from-scratch models
# agree 67-95 %, below export's 97 % default); the bench rows give each int8 file's own test accuracy.
# Usage: KDEDGE_DATA=../shared/data bash bench/retinamnist_export.sh [OUT=runs/retina]
set -euo pipefail
OUT=${1:-runs/retina}
KDEDGE=${KDEDGE:-.venv/bin/kdedge}
PYTHON=${PYTHON:-.venv/bin/python}
LOCK=${LOCK:-/tmp/kdedge-retina.lock}
checked=()
for run in "$OUT"/teacher-s0 "$OUT"/*-kd-s? "$OUT"/*-nokd-s?; do
  [ -f "$run/summary.json" ] && grep -q '"finished": true' "$run/summary.json" || continue
  stage=student; [[ $(basename "$run") == teacher-* ]] && stage=teacher
  if [ ! -f "$run/bench.json" ]; then
    echo "$(date -u +%H:%M:%S) export + bench $run ($stage; load $(cut -d' ' -f1-3 /proc/loadavg))"
    flock "$LOCK" nice -n 5 "$KDEDGE" export "$run" --model "$stage" --precision fp32,int8 --min-agreement 0 --force -q
    flock "$LOCK" nice -n 5 "$KDEDGE" bench "$run" --runtimes onnxruntime --batch 1 --threads 1 \
      --seconds 3 --json "$run/bench.json" -q
  fi
  [ "$stage" = student ] && checked+=("$run")
done
[ ${#checked[@]} -gt 0 ] && "$PYTHON" bench/retinamnist_check.py "${checked[@]}" --json "$OUT/onnx_check.json"
