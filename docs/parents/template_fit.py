"""How well each parent's own outline fits the real objects: the parents as templates, scored on true masks.

For every crop of the evaluated split this draws the mask of each parent code from the reconstruction path with
the bypass and the encoded codes left out (beta1 = beta3 = 0: G_fg0 on the class embedding `V_p(q)` and E_p's
`mu_z`, the child E_c names, placed with `--pose_discrete` by the pose E_p reads), and scores it against the
crop's true mask (IoU of the masks above 0.5, `onegan_tf.metrics.segmentation`). The parent whose outline fits
best is a clustering of the real images by the generator's own templates, an analysis by synthesis; it is scored
(NMI against the families) beside E_p's `argmax ê_p`, with the mean IoU of the best-fitting template and of the
one E_p names. Where the templates are the families, the best fit finds them whatever E_p learned; where it does
not, the templates are the limit.

usage: PYTHONPATH=. python docs/parents/template_fit.py --run_dir=RUN --out=FILE.json [--split=SPLIT]
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags
from evidence import json_main

from onegan_tf import data
from onegan_tf.checkpoint import load_run
from onegan_tf.metrics.clustering import hungarian_accuracy, normalized_mutual_info
from onegan_tf.metrics.segmentation import foreground, iou, mask_overlaps


def template_fit(run_dir: str, split: str) -> dict:
    run = load_run(run_dir)
    model, cfg = run.model, run.config
    n_parent = cfg.model.n_parent
    split = split or cfg.train.final_split
    ds = data.eval_dataset(cfg.data, cfg.model.image_size, 100, split, classes=(cfg.model.n_child, n_parent))
    best, named, family, iou_best, iou_named = [], [], [], [], []
    for b in ds.as_numpy_iterator():
        if "mask" not in b:
            raise ValueError(f"dataset {cfg.data.dataset!r} has no masks: the templates are scored on true masks")
        enc = model.encode(b["image"])
        read = model.read_pose(enc)
        v_c = model.V_c(tf.one_hot(tf.argmax(enc["e_c_hat"], -1), cfg.model.n_child))
        true = foreground(b["mask"])
        ious = []
        for q in range(n_parent):
            v_p = model.V_p(tf.one_hot(tf.fill([len(true)], q), n_parent))
            fg = model.draw_foreground(model.G_fg0((v_p, enc["mu_z"])), v_p, v_c, enc["mu_z"],
                                       pose=None if read is None else read[1])
            ious.append(iou(*mask_overlaps(foreground(fg["I_m"].numpy()), true)[:2]))
        ious = np.stack(ious, 1)
        p = tf.argmax(enc["e_p_hat"], -1).numpy()
        best.append(ious.argmax(1))
        named.append(p)
        family.append(b["parent"])
        iou_best.append(ious.max(1))
        iou_named.append(ious[np.arange(len(p)), p])
    best, named, family, iou_best, iou_named = map(np.concatenate, (best, named, family, iou_best, iou_named))
    return {"run_dir": run_dir, "split": split, "n_images": int(len(family)),
            "best_template": {"nmi": normalized_mutual_info(best, family), "acc": hungarian_accuracy(best, family),
                              "mean_iou": float(iou_best.mean())},
            "e_p": {"nmi": normalized_mutual_info(named, family), "acc": hungarian_accuracy(named, family),
                    "mean_iou_of_its_template": float(iou_named.mean())},
            "agreement": float((best == named).mean())}


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run_dir", None, "Trained run.", flag_values=fv)
    flags.DEFINE_string("out", None, "JSON file to write.", flag_values=fv)
    flags.DEFINE_string("split", "", "Evaluated split (its crops need true masks); '' = the run's --final_split, "
                       "which its end-of-run report scored.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    return json_main(argv, define_flags, __doc__, ("run_dir", "out"),
                     lambda fv: template_fit(fv.run_dir, fv.split))


if __name__ == "__main__":
    sys.exit(main())
