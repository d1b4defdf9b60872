"""How far the true object masks of a configuration's crops name the parent (shape family): what parent
clustering could reach if it read the outline perfectly and nothing else.

On the masks the data pipeline cuts for the end-of-run report (`data.eval_dataset`, the object crops at the
model's image size; the masks are never shown to training):
- `kmeans_masks`: k-means (k = N_P) on the masks average-pooled to 8x8 (diagnose's probe input), scored by
  the report's NMI and ACC — unsupervised clustering of the outlines, with no invariance to pose.
- `kmeans_hu`: k-means on the seven Hu moments of each mask (log-scaled, standardised): invariant to
  position, scale, rotation and mirroring, the pose the synthetic sets draw at random.
- `probe_linear`: diagnose's ridge probe on the pooled masks, fit on the training images' masks and scored
  on the evaluated split's (supervised: an upper bound on what a linear read of the outline tells).
- `probe_cnn`: a small CNN on the full masks, trained on the same labels for a few epochs with random
  rotations by 90 degrees and mirrors (supervised; what a non-linear read of the outline tells at this size).
- `kmeans_hu_encoder_masks` (with `--model_run_dir`): `kmeans_hu` on the masks a trained run's encoders predict
  for the same crops (at 0.5): parents clustered from the learned outline instead of from E_p.

usage: PYTHONPATH=. python docs/parents/shape_ceiling.py --flagfile=configs/demo.cfg --split=test
           --out=docs/parents/shape_ceiling_demo.json
For a set without a held-out split (the folder route of configs/heldout.cfg) the probes are fit on the first
`--probe_train_fraction` of the object split and scored on the rest; k-means runs on the whole split.
"""

from __future__ import annotations

import sys
from typing import Sequence

import keras
import numpy as np
from absl import flags
from evidence import json_main
from scipy.cluster.vq import kmeans2

from onegan_tf import data
from onegan_tf.checkpoint import load_run
from onegan_tf.diagnose import pool, ridge_probe
from onegan_tf.flags import config_from_flags, define_config_flags
from onegan_tf.metrics.clustering import hungarian_accuracy, normalized_mutual_info
from onegan_tf.metrics.shape_merge import hu_moments

KMEANS_RESTARTS = 10
CNN_EPOCHS = 15


def load_masks(cfg, split: str, model=None) -> tuple:
    """(N, H, W) float masks and (N,) parents of a split's object crops; with a model, also its encoder masks
    (the reconstruction path's Î_m at inference, docs/design.md §4)."""
    ds = data.eval_dataset(cfg.data, cfg.model.image_size, 100, split, classes=(cfg.model.n_child, cfg.model.n_parent))
    masks, parents, predicted = [], [], []
    for b in ds.as_numpy_iterator():
        if "mask" not in b:
            raise ValueError(f"dataset {cfg.data.dataset!r} has no masks: the ceiling is measured on true masks")
        masks.append(b["mask"][..., 0])
        parents.append(b["parent"])
        if model is not None:
            predicted.append(model.reconstruct(b["image"])["I_m_hat"].numpy()[..., 0])
    out = np.concatenate(masks).astype(np.float32), np.concatenate(parents)
    return out + (np.concatenate(predicted),) if model is not None else out


def kmeans_scores(features: np.ndarray, parents: np.ndarray, k: int, seed: int) -> dict:
    """k-means with restarts (the lowest distortion kept), scored by NMI and ACC against the parents."""
    x = features.reshape(len(features), -1).astype(np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    best, best_cost = None, np.inf
    for r in range(KMEANS_RESTARTS):
        centres, labels = kmeans2(x, k, minit="++", seed=seed + r)
        cost = ((x - centres[labels]) ** 2).sum()
        if cost < best_cost:
            best, best_cost = labels, cost
    return {"nmi": normalized_mutual_info(best, parents), "acc": hungarian_accuracy(best, parents)}


def cnn_probe(train_m, train_y, test_m, test_y, n_classes: int, seed: int) -> dict:
    """Held-out accuracy of a small CNN trained on the masks, with random quarter turns and mirrors."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)

    def augment(m):
        m = np.rot90(m, k=rng.integers(4), axes=(1, 2))
        return m[:, :, ::-1] if rng.random() < 0.5 else m

    net = keras.Sequential([keras.Input(train_m.shape[1:] + (1,))]
                           + [keras.layers.Conv2D(w, 3, strides=2, padding="same", activation="relu")
                              for w in (16, 32, 64)]
                           + [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(n_classes)])
    net.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for _ in range(CNN_EPOCHS):
        order = rng.permutation(len(train_m))
        for i in range(0, len(order), 50):
            idx = order[i:i + 50]
            net.train_on_batch(augment(train_m[idx])[..., None], train_y[idx])
    pred = np.argmax(net.predict(test_m[..., None], verbose=0), axis=1)
    return {"accuracy": float(np.mean(pred == test_y)),
            "chance": float(np.bincount(test_y, minlength=n_classes).max() / len(test_y)),
            "n_train": len(train_y), "n_test": len(test_y)}


def shape_ceiling(cfg, split: str, probe_train_fraction: float, seed: int, run_dir: str = "") -> dict:
    k = cfg.model.n_parent
    out = {}
    if run_dir:
        masks, parents, predicted = load_masks(cfg, split, load_run(run_dir).model)
        # The same invariant clustering on the masks a trained model predicts: parents from the learned outline.
        out["kmeans_hu_encoder_masks"] = {"run_dir": run_dir,
                                          **kmeans_scores(hu_moments(predicted > 0.5), parents, k, seed)}
    else:
        masks, parents = load_masks(cfg, split)
    if split == "test":
        train_m, train_y = load_masks(cfg, "object")
        test_m, test_y = masks, parents
    else:
        cut = int(len(masks) * probe_train_fraction)
        train_m, train_y, test_m, test_y = masks[:cut], parents[:cut], masks[cut:], parents[cut:]
    return {"dataset": cfg.data.dataset, "split": split, "n_images": len(masks), "n_parent": k,
            "image_size": cfg.model.image_size,
            "kmeans_masks": kmeans_scores(pool(masks), parents, k, seed),
            "kmeans_hu": kmeans_scores(hu_moments(masks), parents, k, seed),
            "probe_linear": ridge_probe(pool(train_m), train_y, pool(test_m), test_y, k),
            "probe_cnn": cnn_probe(train_m, train_y, test_m, test_y, k, seed), **out}


def define_flags(fv: flags.FlagValues) -> None:
    define_config_flags(fv)
    flags.DEFINE_string("split", "test", "Split whose masks are clustered (the report's --final_split).",
                        flag_values=fv)
    flags.DEFINE_float("probe_train_fraction", 0.8, "Share of the split the probes are fit on when it is not "
                       "'test' (then the object split trains them).", flag_values=fv)
    flags.DEFINE_string("out", None, "JSON file to write.", flag_values=fv)
    flags.DEFINE_string("model_run_dir", "", "A trained run whose encoder masks are also clustered by their Hu "
                        "moments ('' = none).", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    return json_main(argv, define_flags, __doc__, ("out",),
                     lambda fv: shape_ceiling(config_from_flags(fv), fv.split, fv.probe_train_fraction, fv.seed,
                                              fv.model_run_dir))


if __name__ == "__main__":
    sys.exit(main())
