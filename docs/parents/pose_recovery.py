"""Whether E_p reads back the pose that `--pose_warp` gave a generated image.

On the reconstruction path G_fg2 places the foreground by the pose of z^ = E_p's mu_z (at inference), so the
encoder masks land where the object is only if that pose is the image's. For `--num_images` generated images
(child c, z) this compares the pose head's output on z with its output on mu_z(I): the spread of each
parameter, the mean cosine of the in-plane turn's error (1 = read exactly, 0 = unrelated) and the correlation
of the mirror weights. With `--pose_discrete` it compares the head's residual turn, scale and shift on z with
E_p's reading of them (`pose_fine_hat`), and scores the 8 poses as a class (`pose_class_hat`): the fraction
read back exactly, and the fraction read back as a pose the generated mask looks the same in (IoU of the two
placed masks >= 0.9), which is as right for the reconstruction path.

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
from onegan_tf.metrics.segmentation import foreground, iou, mask_overlaps
from onegan_tf.pose import POSE_PARAMETERS, compose_pose, discrete_pose, place


def pose_recovery(run_dir: str, num_images: int, seed: int) -> dict:
    model = load_run(run_dir).model
    if not model.cfg.pose_warp:
        raise ValueError(f"{run_dir} was trained without --pose_warp: its generator has no pose to read back")
    z = tf.random.stateless_normal((num_images, model.cfg.d_z), seed=(seed, 1))
    child = tf.random.stateless_uniform((num_images,), seed=(seed, 2), minval=0, maxval=model.cfg.n_child,
                                        dtype=tf.int32)
    head = model.G_fg2.pose
    enc = model.encode(model.generate(child, z)["I"])
    if not head.discrete:
        given, read = head.pose(z).numpy(), head.pose(enc["mu_z"]).numpy()
        w_given, w_read = (1 - np.cos(given[:, 1])) / 2, (1 - np.cos(read[:, 1])) / 2
        return {**spread(given, read, POSE_PARAMETERS),
                "mirror_weight_correlation": float(np.corrcoef(w_given, w_read)[0, 1])}
    given, read = head.fine(z).numpy(), enc["pose_fine_hat"].numpy()
    out = spread(given, read, ("residual_theta",) + POSE_PARAMETERS[2:])
    k_given = discrete_pose(z).numpy()
    k_read = tf.argmax(enc["pose_class_hat"], -1).numpy()
    # The generated mask placed by the discrete pose read back instead of the given one (the residual turn,
    # scale and shift kept from z): G_fg2's canonical drawing placed both ways, at 0.5.
    codes = model.embed(child)
    C_fg0 = model.G_fg1(model.G_fg0((codes["v_p"], z)))
    canonical = model.G_fg2.draw((C_fg0, codes["v_p"], codes["v_c"]))["I_m"]
    a, b = (foreground(place(canonical, compose_pose(k, given)).numpy()) for k in (k_given, k_read))
    ious = iou(*mask_overlaps(a, b)[:2])
    return {**out, "discrete_accuracy": float((k_given == k_read).mean()),
            "discrete_equivalent": float((ious >= 0.9).mean()), "discrete_mask_iou_mean": float(ious.mean())}


def spread(given, read, names) -> dict:
    """The spread of each parameter given and read back, and the mean cosine of the turn's error (column 0)."""
    return {"num_images": len(given), "std_given": dict(zip(names, given.std(0).tolist())),
            "std_read": dict(zip(names, read.std(0).tolist())),
            "theta_mean_cos_error": float(np.cos(given[:, 0] - read[:, 0]).mean())}


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
