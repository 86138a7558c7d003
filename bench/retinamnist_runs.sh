#!/usr/bin/env bash
# The RetinaMNIST result runs: 2 seeds of the ConvNeXt-T teacher, then per seed the MobileNetV3
# and Swin-T students with KD and without (distillation.loss=none: same seed, same schedule), then ConvNeXt-T
# self-KD; every student reuses its seed's teacher (teacher.checkpoint). Each run takes the shared training
# lock on its own. Usage: KDEDGE_DATA=../shared/data bash bench/retinamnist_runs.sh [OUT=runs/retina]
# Extra `--set`s for every run come from $RETINA_SET (e.g. "amp=off").
set -euo pipefail
OUT=${1:-runs/retina}
KDEDGE=${KDEDGE:-.venv/bin/kdedge}
LOCK=${LOCK:-/tmp/kdedge-train.lock}
read -r -a EXTRA <<< "$(for s in ${RETINA_SET:-}; do printf -- '--set %s ' "$s"; done)"
mkdir -p "$OUT"

run() {  # run NAME COMMAND...: skip a finished run, else run it under the lock with its own log
  local name=$1; shift
  if [ -f "$OUT/$name/summary.json" ] && grep -q '"finished": true' "$OUT/$name/summary.json"; then
    echo "skip $name (finished)"; return
  fi
  echo "$(date -u +%H:%M:%S) start $name (load $(cut -d' ' -f1-3 /proc/loadavg))"
  flock "$LOCK" nice -n 5 "$KDEDGE" "$@" --out "$OUT/$name" --force -q "${EXTRA[@]}" > "$OUT/$name.log" 2>&1
  echo "$(date -u +%H:%M:%S) done  $name"
}

for seed in 0 1; do
  run "teacher-s$seed" train retina_convnext_teacher --set seed=$seed
done
for seed in 0 1; do
  T="teacher.checkpoint=$OUT/teacher-s$seed"
  run "mobile-kd-s$seed" distill retina_mobile --set seed=$seed --set "$T"
  run "mobile-nokd-s$seed" distill retina_mobile --set seed=$seed --set "$T" --set distillation.loss=none
done
for seed in 0 1; do
  T="teacher.checkpoint=$OUT/teacher-s$seed"
  run "swin-kd-s$seed" distill retina_swin --set seed=$seed --set "$T"
  run "swin-nokd-s$seed" distill retina_swin --set seed=$seed --set "$T" --set distillation.loss=none
done
for seed in 0 1; do
  run "self-kd-s$seed" distill retina_convnext_self --set seed=$seed --set "teacher.checkpoint=$OUT/teacher-s$seed"
done
