#!/usr/bin/env bash
# The demo through the box-free route (configs/demo_boxfree.cfg), and its numbers beside the boxed demo's.
# 1. data: the demo's 2400 object images (synthetic indices 0..2399, the same generator settings as
#    configs/demo.cfg) as plain PNGs, and the backgrounds alone of 600 other examples (2400..2999) as the
#    object-free folder: as many images as the boxed demo's 80/20 split gives each domain.
# 2. train: python -m onegan_tf.train --flagfile=configs/demo_boxfree.cfg
# 3. evaluate: segmentation and clustering on the synthetic held-out test split (indices 3000..3299, the
#    boxed demo's --final_split=test) with the boxed demo's crop (bbox) and with the whole image (full),
#    beside the trivial baselines on the same crops and the boxed demo's numbers (docs/demo/flags_off/final.json),
#    written to docs/demo_boxfree/metrics.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=data/synthetic_boxfree
if [ ! -d "$DATA/images" ]; then
  python -m onegan_tf.data.synthetic --resolution 64 --write_plain "$DATA/images" --n 2400 --start 0
  python -m onegan_tf.data.synthetic --resolution 64 --write_backgrounds "$DATA/backgrounds" --n 600 --start 2400
fi
python -m onegan_tf.train --flagfile=configs/demo_boxfree.cfg --noprogress
python - <<'PY'
import dataclasses, json, time

from onegan_tf import baselines
from onegan_tf.checkpoint import load_run
from onegan_tf.config import DataConfig
from onegan_tf.evaluate import ModelEvalContext
from onegan_tf.metrics import registry
from onegan_tf.report import collect

run = load_run("runs/demo_boxfree")
boxed = json.load(open("docs/demo/flags_off/final.json"))["report"]["metrics"]
out = {"run": run.run_dir, "checkpoint": run.checkpoint, "step": run.step, "split": "test", "metrics": {},
       "boxed_demo_crop=bbox (docs/demo/flags_off/final.json)": {k: boxed[k] for k in ("segmentation", "clustering")}}
for crop in ("bbox", "full"):
    data = DataConfig(dataset="synthetic", synthetic_resolution=64, synthetic_train_size=3000,
                      synthetic_test_size=300, crop=crop)
    cfg = dataclasses.replace(run.config, data=data)
    ctx = ModelEvalContext(run.model, cfg, split="test", batch_size=50, progress=False)
    t0 = time.time()
    out["metrics"][f"crop={crop}"] = registry.compute(["segmentation", "clustering"], ctx)
    out["metrics"][f"crop={crop}"]["wall_s"] = round(time.time() - t0, 1)
    # The trivial baselines on the same crops (the ellipse takes its area from the training split's masks).
    mc = run.config.model
    real = collect(data, mc.image_size, "test", classes=(mc.n_child, mc.n_parent))
    area = baselines.mean_area_fraction(collect(data, mc.image_size, "object")["mask"])
    out["baselines"] = out.get("baselines", {})
    out["baselines"][f"crop={crop}"] = baselines.all_baselines(
        real["image"], real["mask"], real["child"], real["parent"], area, mc.n_child, mc.n_parent, 0)
with open("docs/demo_boxfree/metrics.json", "w") as f:
    json.dump(out, f, indent=2, default=float)
print(json.dumps(out, indent=2, default=float))
PY
