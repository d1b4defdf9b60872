#!/usr/bin/env bash
# One distillation variant of the demo: re-distil a finished demo run's trained model (--distill_from, so the
# schedule is not re-run) with other distillation flags, evaluate the distilled segmenter on the held-out test
# split (the protocol of docs/demo/flags_off/final.json: configs/demo.cfg's --final_split=test, IoU/DICE per image) and
# append one JSON line to docs/demo/distill_variants.jsonl: the command, the distilled and the encoder masks'
# IoU/DICE, the distillation's wall time and the machine's load average around it.
# usage: docs/demo/distill_variants.sh SOURCE_RUN_DIR OUT_DIR NAME [--FLAG=VALUE ...]
#   e.g. docs/demo/distill_variants.sh runs/demo runs/distill hard_1000 --distill_target=hard
set -euo pipefail
cd "$(dirname "$0")/../.."
SOURCE=$1 ROOT=$2 NAME=$3
shift 3
CMD=(python -m onegan_tf.train --flagfile=configs/demo.cfg "--distill_from=$SOURCE" "--run_dir=$ROOT/$NAME"
     --final_eval=segmentation --nofinal_export --noprogress "$@")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
"${CMD[@]}"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
NAME=$NAME RUN="$ROOT/$NAME" LOAD_BEFORE=$LOAD_BEFORE LOAD_AFTER=$LOAD_AFTER CMD="${CMD[*]}" python - <<'PY'
import json, os

run = os.environ["RUN"]
with open(os.path.join(run, "eval", "final.json")) as f:
    metrics = json.load(f)["report"]["metrics"]
with open(os.path.join(run, "summary.json")) as f:
    summary = json.load(f)
with open(os.path.join(run, "config.json")) as f:
    train = json.load(f)["train"]
distilled, encoder = metrics["segmentation_distilled"], metrics["segmentation"]
line = {"name": os.environ["NAME"], "command": os.environ["CMD"], "distilled_from": summary["distilled_from"],
        "distill_steps": train["distill_steps"], "distill_target": train["distill_target"],
        "distill_real": train["distill_real"], "distill_real_backgrounds": train.get("distill_real_backgrounds", 0.0),
        "distill_augment": train.get("distill_augment", ""), "distill_cosine": train.get("distill_cosine", False),
        "distill_width": train.get("distill_width", 1.0),
        "distill_flip_average": train.get("distill_flip_average", False),
        "generator_weights": train["generator_weights"],
        "split": "test", "n_images": distilled["n_images"],
        "distilled": {"iou": distilled["iou"], "dice": distilled["dice"]},
        "encoder": {"iou": encoder["iou"], "dice": encoder["dice"]},
        "iou_gain": distilled["iou"] - encoder["iou"], "final_losses": summary["final_losses"],
        "distill_wall_s": summary["wall_s"], "loadavg_before": os.environ["LOAD_BEFORE"],
        "loadavg_after": os.environ["LOAD_AFTER"]}
with open("docs/demo/distill_variants.jsonl", "a") as f:
    f.write(json.dumps(line, sort_keys=True) + "\n")
print(json.dumps(line, indent=1))
PY
