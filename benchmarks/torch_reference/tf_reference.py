"""The onegan_tf side of the reference check: parameter counts per network and forward FLOPs of one training
step per phase (onegan_tf.flops), as one JSON line. Run with the onegan_tf virtualenv from the repo root:

    python benchmarks/torch_reference/tf_reference.py --image_size=32 --channel_mult=0.25 --batch_size=20
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from onegan_tf import flops  # noqa: E402
from onegan_tf.config import ModelConfig, TrainConfig  # noqa: E402
from onegan_tf.model import OneGAN  # noqa: E402
from onegan_tf.trainer import PHASES  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image_size", type=int, default=128)
    ap.add_argument("--channel_mult", type=float, default=1.0)
    ap.add_argument("--batch_size", type=int, default=20)
    ap.add_argument("--phases", default=",".join(PHASES))
    a = ap.parse_args()
    unknown = set(a.phases.split(",")) - set(PHASES)
    if unknown:
        ap.error(f"--phases: unknown {sorted(unknown)}; the phases are {', '.join(PHASES)}")
    model = OneGAN(ModelConfig(image_size=a.image_size, channel_mult=a.channel_mult))
    steps = {phase: flops.step_flops(model, TrainConfig(), phase, a.batch_size) for phase in PHASES
             if phase in a.phases.split(",")}
    out = {"params": model.parameter_counts(),
           "forward_flops": {name: f["forward"] for name, f in steps.items()},
           "training_flops": {name: f["training"] for name, f in steps.items()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
