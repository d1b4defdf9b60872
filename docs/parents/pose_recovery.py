"""Whether E_p reads back the pose that `--pose_warp` gave a generated image.

On the reconstruction path G_fg2 places the foreground by the pose of z^ = E_p's mu_z (at inference), so the
encoder masks land where the object is only if that pose is the image's. For `--num_images` generated images
(child c, z) this compares the pose head's output on z with its output on mu_z(I): the spread of each
parameter, the mean cosine of the in-plane turn's error (1 = read exactly, 0 = unrelated) and the correlation
of the mirror weights.

usage: PYTHONPATH=. python docs/parents/pose_recovery.py --run_dir=RUN --out=FILE.json
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags
from evidence import json_main

from onegan_tf.checkpoint import load_run
from onegan_tf.pose import POSE_PARAMETERS


def pose_recovery(run_dir: str, num_images: int, seed: int) -> dict:
    model = load_run(run_dir).model
    if not model.cfg.pose_warp:
        raise ValueError(f"{run_dir} was trained without --pose_warp: its generator has no pose to read back")
    z = tf.random.stateless_normal((num_images, model.cfg.d_z), seed=(seed, 1))
    child = tf.random.stateless_uniform((num_images,), seed=(seed, 2), minval=0, maxval=model.cfg.n_child,
                                        dtype=tf.int32)
    given = model.G_fg2.pose.pose(z).numpy()
    read = model.G_fg2.pose.pose(model.encode(model.generate(child, z)["I"])["mu_z"]).numpy()
    w_given, w_read = (1 - np.cos(given[:, 1])) / 2, (1 - np.cos(read[:, 1])) / 2
    return {"num_images": num_images,
            "std_given": dict(zip(POSE_PARAMETERS, given.std(0).tolist())),
            "std_read": dict(zip(POSE_PARAMETERS, read.std(0).tolist())),
            "theta_mean_cos_error": float(np.cos(given[:, 0] - read[:, 0]).mean()),
            "mirror_weight_correlation": float(np.corrcoef(w_given, w_read)[0, 1])}


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run_dir", None, "Run trained with --pose_warp.", flag_values=fv)
    flags.DEFINE_string("out", None, "JSON file to write.", flag_values=fv)
    flags.DEFINE_integer("num_images", 500, "Generated images.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the draws.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    return json_main(argv, define_flags, __doc__, ("run_dir", "out"),
                     lambda fv: pose_recovery(fv.run_dir, fv.num_images, fv.seed))


if __name__ == "__main__":
    sys.exit(main())
