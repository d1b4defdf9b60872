#!/usr/bin/env bash
# One parent probe: train configs/demo.cfg with extra flags (a full run, or Phase I alone with --phase1_only),
# score it with the end-of-run report on the demo's 300 test images, measure which code sets the generated
# outline and append one JSON line to docs/parents/probes.jsonl (docs/parents/record_probe.py): the command,
# parent and child NMI/ACC beside k-means on pixels, mask IoU when scored, the code influence, the wall time
# and the machine's load average around the run.
# usage: [FLAGFILE=configs/heldout.cfg] docs/parents/probe.sh OUT_DIR NAME [--phase1_only] [--FLAG=VALUE ...]
#   e.g. docs/parents/probe.sh runs/parents p1_gain10 --phase1_only --shape_code_gain=10
# FLAGFILE (default configs/demo.cfg) trains and scores another configuration, e.g. the held-out one (its
# data written first by python -m onegan_tf.data.heldout --out_dir=data/heldout).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
ROOT=$1 NAME=$2
shift 2
SCOPE=(--distill_steps=0 --nofinal_export --noprogress)
if [[ "${1:-}" == "--phase1_only" ]]; then
  shift
  # Phase I alone (the generation path: where the outline's codes are learned), clustering scored at its end.
  SCOPE+=(--phase2a_steps=0 --phase2b_steps=0 --final_eval=clustering --image_every=100000 --ckpt_every=1200)
fi
CMD=(python -m onegan_tf.train "--flagfile=${FLAGFILE:-configs/demo.cfg}" "--run_dir=$ROOT/$NAME" "${SCOPE[@]}" "$@")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
"${CMD[@]}"
WALL=$(( $(date +%s) - START ))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
python docs/parents/record_probe.py "--name=$NAME" "--run_dir=$ROOT/$NAME" "--command=${CMD[*]}" "--wall_s=$WALL" \
    "--loadavg_before=$LOAD_BEFORE" "--loadavg_after=$LOAD_AFTER"
