#!/usr/bin/env bash
# The parent and child clusters of a run at each of its checkpoints: `python -m onegan_tf.evaluate
# --metrics=clustering` on the split its end-of-run report scored, one JSON line per checkpoint (its step,
# parent and child NMI/ACC) appended to OUT. The trainer keeps only its last checkpoints, so CKPT_DIR is a
# folder where they were copied as the run went (any folder of ckpt-N.index / .data files of that run).
# usage: docs/parents/trajectory.sh RUN_DIR CKPT_DIR OUT.jsonl
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
RUN=$1 CKPTS=$2 OUT=$3
SPLIT=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['train']['final_split'])" "$RUN/config.json")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for index in $(ls "$CKPTS"/ckpt-*.index | sort -t- -k2 -n); do
  prefix=${index%.index}
  python -m onegan_tf.evaluate "--run_dir=$RUN" "--checkpoint=$prefix" --metrics=clustering "--split=$SPLIT" \
      --nofigures --noprogress "--out=$TMP" > /dev/null
  python - "$TMP/report.json" "$RUN" >> "$OUT" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["metrics"]["clustering"]
print(json.dumps({"run_dir": sys.argv[2], "checkpoint": r["checkpoint"], "step": r["step"], "split": r["split"],
                  **{k: c[k] for k in ("parent_nmi", "parent_acc", "child_nmi", "child_acc", "n_images")}}))
PY
done
