#!/usr/bin/env bash
# What 64 px costs the demo: seconds per training step of configs/demo.cfg's model with the --pose_discrete flags at
# 32 and at 64 px, Phase I and Phase IIb (`python -m onegan_tf.bench --what=train,flops`, which also times the
# ceiling convolution), the two sizes alternated twice in one run so that both see the same machine.
# usage: docs/parents/resolution_bench.sh OUT.jsonl
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=$1
FLAGS=(--pose_warp --pose_discrete --pose_mse --mask_before_child --shape_code_gain=10)
# A fixed L_RM target, as when resolution_bench.jsonl was measured (the bench did not yet estimate
# --mask_target=auto from the data; it does now): a step's time does not depend on the target.
FLAGS+=(--mask_target=0.3)
for round in 1 2; do
  for size in 32 64; do
    python -m onegan_tf.bench --flagfile=configs/demo.cfg "${FLAGS[@]}" "--image_size=$size" --what=train,flops \
        --phases=I,IIb --steps=5 --warmup=2 "--out=$OUT"
  done
done
