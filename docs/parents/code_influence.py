"""Which code sets the generated outline: how much the mask I_m changes when one code changes and the others stay.

For `--num_images` draws of (child c, z), the run's generators draw I_m three more times, each with one code
replaced: the parent code v_p by another parent's (`model.generate(..., parent=)`, the child code unchanged),
the child code v_c by another child's of the same parent, and z by a fresh draw. Each change is scored as the
mean absolute difference of the two masks and as 1 - IoU of their halves at 0.5 (0 = the same outline).
FineGAN's hierarchy wants the parent change large (the parent names the shape) and the child change small.
Also printed: the norms with which v_p and z enter G_fg0's first Linear layer (its kernel applied to each
parent's v_p times `--shape_code_gain`, and to draws of z), the two inputs whose mix is the pre-image A_fg.

usage: PYTHONPATH=. python docs/parents/code_influence.py --run_dir=RUN --out=FILE.json
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags
from evidence import json_main

from onegan_tf.checkpoint import load_run
from onegan_tf.metrics.segmentation import iou, mask_overlaps


def _change(a: np.ndarray, b: np.ndarray) -> dict:
    inter, union, _ = mask_overlaps(a[..., 0] > 0.5, b[..., 0] > 0.5)
    return {"mean_abs": float(np.abs(a - b).mean()), "one_minus_iou": float(1.0 - iou(inter, union).mean())}


def code_influence(run_dir: str, num_images: int, seed: int) -> dict:
    run = load_run(run_dir)
    model, cfg = run.model, run.model.cfg
    k, n = cfg.children_per_parent, num_images
    rng = np.random.default_rng(seed)
    child = rng.integers(cfg.n_child, size=n).astype(np.int32)
    parent = child // k
    other_parent = ((parent + rng.integers(1, cfg.n_parent, size=n)) % cfg.n_parent).astype(np.int32)
    sibling = (parent * k + (child % k + rng.integers(1, k, size=n)) % k).astype(np.int32) if k > 1 else child
    z, z2 = (rng.normal(size=(n, cfg.d_z)).astype(np.float32) for _ in range(2))

    def masks(c, zz, p=None):
        return model.generate(tf.constant(c), tf.constant(zz), None if p is None else tf.constant(p))["I_m"].numpy()

    base = masks(child, z)
    out = {"run_dir": run_dir, "num_images": n, "seed": seed,
           "change_parent": _change(base, masks(child, z, other_parent)),
           "change_child_same_parent": _change(base, masks(sibling, z)),
           "change_z": _change(base, masks(child, z2))}
    kernel = np.asarray(model.G_fg0.fc.kernel)
    v_p = np.asarray(model.V_p.table.kernel) * model.G_fg0.code_gain   # as it enters the Linear layer
    out["G_fg0_input_norms"] = {
        "v_p": float(np.linalg.norm(v_p @ kernel[:cfg.d_p], axis=1).mean()),
        "v_p_minus_mean": float(np.linalg.norm((v_p - v_p.mean(0)) @ kernel[:cfg.d_p], axis=1).mean()),
        "z": float(np.linalg.norm(z @ kernel[cfg.d_p:], axis=1).mean())}
    return out


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run_dir", None, "Trained run directory.", flag_values=fv)
    flags.DEFINE_string("out", None, "JSON file to write.", flag_values=fv)
    flags.DEFINE_integer("num_images", 500, "Draws of (child, z).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the draws.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    return json_main(argv, define_flags, __doc__, ("run_dir", "out"),
                     lambda fv: code_influence(fv.run_dir, fv.num_images, fv.seed))


if __name__ == "__main__":
    sys.exit(main())
