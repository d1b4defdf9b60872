"""Experiment (not part of the package): one demo training run that carries several EMA shadows at once --
the raw trajectory does not depend on the EMA, so one run serves every setting -- then FID/IS on the test
split of the raw weights and of each shadow, with the s3 demo's feature classifier, two seeds.

usage: python docs/demo/ema_sweep.py RUN_DIR NUM_GENERATED [--FLAG=VALUE ...]  (from the repository root,
PYTHONPATH=.). CLASSIFIER below is the feature classifier of the demo run whose FID spread
docs/demo/fid_spread.jsonl holds. docs/demo/ema_sweep.jsonl is RUN_DIR/sweep.jsonl of
`python docs/demo/ema_sweep.py /work/runs/s4/distill/demo_sweep 5000`, run on commit fd08445 (the demo's
schedule; the same EMA code as now) on 2 CPU cores shared with other work.
"""
import json
import os
import sys

from onegan_tf import ema as ema_mod
from onegan_tf import evaluate
from onegan_tf import train as train_mod
from onegan_tf import trainer as trainer_mod

# (ema_kimg, ema_rampup); the first is demo.cfg's (the default), the trainer's own shadow.
SETTINGS = [(10.0, 0.05), (10.0, 0.02), (10.0, 0.1), (10.0, 0.2), (2.0, 0.0), (0.5, 0.0)]
CLASSIFIER = "/work/runs/s3/demo/eval/feature_classifier.keras"
made = []


class MultiEMA(ema_mod.GeneratorEMA):
    def __init__(self, model, batch_size, ema_kimg, ema_rampup):
        super().__init__(model, batch_size, ema_kimg, ema_rampup)
        self.extras = [ema_mod.GeneratorEMA(model, batch_size, k, r) for k, r in SETTINGS[1:]]
        made.append((self, model))

    def update(self, step):
        super().update(step)
        for e in self.extras:
            e.update(step)


run_dir, n = sys.argv[1], int(sys.argv[2])
trainer_mod.GeneratorEMA = MultiEMA
rc = train_mod.main(["train", "--flagfile=configs/demo.cfg", f"--run_dir={run_dir}", "--distill_steps=0",
                     "--final_eval=", "--nofinal_export", "--noprogress", *sys.argv[3:]])
assert rc == 0, rc
primary, model = made[-1]
models = {"raw": model, f"ema_{SETTINGS[0][0]}_{SETTINGS[0][1]}": model.with_networks(**primary.networks)}
for (k, r), e in zip(SETTINGS[1:], primary.extras):
    models[f"ema_{k}_{r}"] = model.with_networks(**e.networks)
results = []
for seed in (0, 1):
    for name, m in models.items():
        rep = evaluate.evaluate(run_dir, ["fid", "is"], split="test", feature_net=CLASSIFIER, num_generated=n,
                                out_dir=os.path.join(run_dir, "sweep", f"{name}_s{seed}"), seed=seed,
                                figures=False, progress=False, model=m)
        line = {"weights": name, "seed": seed, "num_generated": n, "fid": rep["metrics"]["fid"]["fid"],
                "is": rep["metrics"]["is"]["is"], "wall_s": rep["wall_s"]}
        print(json.dumps(line), flush=True)
        results.append(line)
with open(os.path.join(run_dir, "sweep.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in results)
