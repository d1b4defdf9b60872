#!/usr/bin/env bash
# The spread of the generation metrics of one finished run: FID and IS of its raw and its EMA generator
# weights on the final evaluation's split and feature classifier (the run's config.json and
# eval/feature_classifier.keras), at the given seeds and numbers of generated images. One evaluation per
# directory under OUT_DIR (kept: a second call evaluates only what is missing), then one JSON line per
# evaluation appended to docs/demo/fid_spread.jsonl.
# usage: docs/demo/fid_spread.sh RUN_DIR OUT_DIR "SEEDS" "COUNTS"
#   e.g. docs/demo/fid_spread.sh runs/demo runs/fid_spread "0 1 2" "2000 10000"
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=$1 OUT=$2 SEEDS=$3 COUNTS=$4
SPLIT=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['train']['final_split'])" "$RUN/config.json")
for n in $COUNTS; do for seed in $SEEDS; do for w in raw ema; do
  dir="$OUT/${w}_n${n}_s${seed}"
  [ -f "$dir/report.json" ] && continue
  python -m onegan_tf.evaluate "--run_dir=$RUN" --metrics=fid,is "--split=$SPLIT" \
    "--feature_net=$RUN/eval/feature_classifier.keras" "--num_generated=$n" "--seed=$seed" \
    "--generator_weights=$w" "--out=$dir" --nofigures --noprogress
done; done; done
OUT=$OUT SEEDS=$SEEDS COUNTS=$COUNTS python - <<'PY'
import json, os

lines = []
for n in os.environ["COUNTS"].split():
    for seed in os.environ["SEEDS"].split():
        for w in ("raw", "ema"):
            with open(os.path.join(os.environ["OUT"], f"{w}_n{n}_s{seed}", "report.json")) as f:
                r = json.load(f)
            lines.append({"run_dir": r["run_dir"], "checkpoint": r["checkpoint"], "generator_weights": w,
                          "split": r["split"], "num_generated": r["num_generated"], "seed": r["seed"],
                          "fid": r["metrics"]["fid"]["fid"], "is": r["metrics"]["is"]["is"],
                          "feature_net": r["feature_net"]["spec"]})
with open("docs/demo/fid_spread.jsonl", "a") as f:
    f.writelines(json.dumps(line, sort_keys=True) + "\n" for line in lines)
for line in lines:
    print(line["generator_weights"], line["num_generated"], line["seed"], round(line["fid"], 3), round(line["is"], 3))
PY
