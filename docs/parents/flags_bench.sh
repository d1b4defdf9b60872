#!/usr/bin/env bash
# What the parent flags cost the demo: seconds per training step of configs/demo.cfg's model with the flags off,
# with --pose_warp --pose_discrete --pose_mse --mask_before_child --shape_code_gain=10, and with those and 12
# parent codes (the model of `probe.sh ... --n_parent=12`), in Phases I, IIa and IIb (`python -m
# onegan_tf.bench --what=train,flops`, which also times the ceiling convolution), the three alternated twice in
# one run so that all see the same machine.
# usage: docs/parents/flags_bench.sh OUT.jsonl
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=$1
POSE=(--pose_warp --pose_discrete --pose_mse --mask_before_child --shape_code_gain=10)
BENCH=(--flagfile=configs/demo.cfg --what=train,flops --phases=I,IIa,IIb --steps=5 --warmup=2 "--out=$OUT")
for round in 1 2; do
  python -m onegan_tf.bench "${BENCH[@]}"
  python -m onegan_tf.bench "${BENCH[@]}" "${POSE[@]}"
  python -m onegan_tf.bench "${BENCH[@]}" "${POSE[@]}" --n_parent=12
done
