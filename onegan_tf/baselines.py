"""Trivial baselines that put OneGAN's segmentation and clustering numbers in context.

Each runs on the same evaluation images the model is scored on and uses the metrics' own pure functions:
- `all_foreground`: every pixel is object.
- `centred_disc`: a centred disc whose area is the mean object area of the *training* split, fixed
  before the evaluation split is looked at.
- `border_colour`: pixels far (in RGB) from the mean colour of the image border are object; the threshold
  is the best one on the evaluation split itself, so this is an optimistic (oracle-threshold) baseline.
- `kmeans_pixels`: k-means on raw 16x16 pixels with k = N_C and k = N_P, scored by ACC and NMI.

`python -m onegan_tf.baselines --n 600 [--seed 1] [--n_parents 8 --resolution 64]` prints them on the
uncropped synthetic set (`synthetic_baselines`): the set is only useful if trivial methods do not solve it.
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
from absl import flags
from scipy.cluster.vq import kmeans2

from onegan_tf import cli
from onegan_tf.data import synthetic
from onegan_tf.metrics.clustering import hungarian_accuracy, normalized_mutual_info
from onegan_tf.metrics.segmentation import dice, iou, mask_overlaps

KMEANS_SIDE = 16
KMEANS_RESTARTS = 4
BORDER_THRESHOLDS = np.linspace(0.02, 1.2, 60)


def _scores(pred: np.ndarray, gt: np.ndarray) -> dict:
    inter, union, total = mask_overlaps(pred, gt)
    return {"iou": float(iou(inter, union).mean()), "dice": float(dice(inter, total).mean())}


def all_foreground(gt: np.ndarray) -> dict:
    """IoU/DICE of an all-object mask against boolean masks (N, H, W)."""
    return _scores(np.ones_like(gt, bool), gt)


def disc_mask(size: int, area_fraction: float) -> np.ndarray:
    """A centred disc covering `area_fraction` of a size x size image."""
    r = np.sqrt(area_fraction * size * size / np.pi)
    yy, xx = np.mgrid[:size, :size] + 0.5
    return (xx - size / 2) ** 2 + (yy - size / 2) ** 2 <= r * r


def centred_disc(gt: np.ndarray, train_area_fraction: float) -> dict:
    """IoU/DICE of a centred disc with the training split's mean object area."""
    disc = disc_mask(gt.shape[1], train_area_fraction)
    return {**_scores(np.broadcast_to(disc, gt.shape), gt), "area_fraction": float(train_area_fraction)}


def border_colour(images: np.ndarray, gt: np.ndarray) -> dict:
    """Object = RGB distance from the mean border colour above a threshold; best threshold on these images."""
    x = np.asarray(images, np.float32)
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1).mean(axis=1)
    dist = np.linalg.norm(x - border[:, None, None, :], axis=-1) / 2.0   # images in [-1, 1]
    results = [(_scores(dist > t, gt), float(t)) for t in BORDER_THRESHOLDS]
    best, threshold = max(results, key=lambda r: r[0]["iou"])
    return {**best, "threshold": threshold}


def kmeans_pixels(images: np.ndarray, labels: np.ndarray, k: int, seed: int = 0) -> dict:
    """k-means on raw pixels (downsampled to 16x16), best of a few restarts by distortion; ACC and NMI."""
    x = np.asarray(images, np.float64)
    n, h = x.shape[:2]
    f = h // KMEANS_SIDE if h >= KMEANS_SIDE else 1
    x = x[:, : f * (h // f), : f * (h // f)].reshape(n, h // f, f, h // f, f, -1).mean(axis=(2, 4)).reshape(n, -1)
    best, best_cost = None, np.inf
    for r in range(KMEANS_RESTARTS):
        centroids, assign = kmeans2(x, k, minit="++", rng=seed + r)
        cost = float(((x - centroids[assign]) ** 2).sum())
        if cost < best_cost:
            best, best_cost = assign, cost
    return {"acc": hungarian_accuracy(best, labels), "nmi": normalized_mutual_info(best, labels), "k": int(k)}


def mean_area_fraction(masks: np.ndarray) -> float:
    return float(np.mean(np.asarray(masks, bool).reshape(len(masks), -1).mean(axis=1)))


def all_baselines(images, masks, child, parent, train_area_fraction, n_child, n_parent, seed=0) -> dict:
    """Every baseline on one evaluation set: images (N,H,W,3) in [-1,1], masks (N,H,W) bool, labels (N,)."""
    out = {"all_foreground": all_foreground(masks),
           "centred_disc": centred_disc(masks, train_area_fraction),
           "border_colour": border_colour(images, masks)}
    if child is not None and np.all(np.asarray(child) >= 0):
        out["kmeans_child"] = kmeans_pixels(images, child, n_child, seed)
        out["kmeans_parent"] = kmeans_pixels(images, parent, n_parent, seed)
        out["kmeans_parent"]["chance_acc"] = float(np.bincount(parent).max() / len(parent))
    return out


def synthetic_baselines(spec: synthetic.SyntheticSpec, n: int = 600, examples: list[dict] | None = None) -> dict:
    """Every baseline on the first `n` uncropped images of the synthetic set, as flat scores."""
    ex = examples if examples is not None else synthetic.generate_many(spec, range(n))
    gt = np.stack([e["mask"] > 127 for e in ex])
    images = np.stack([e["image"] for e in ex]).astype(np.float32) / 127.5 - 1.0
    child = np.array([e["child"] for e in ex])
    parent = np.array([e["parent"] for e in ex])
    b = all_baselines(images, gt, child, parent, mean_area_fraction(gt), spec.n_child, spec.n_parents, spec.seed)
    return {"n": float(len(ex)), "all_fg_iou": b["all_foreground"]["iou"],
            "centred_disc_iou": b["centred_disc"]["iou"], "border_colour_iou": b["border_colour"]["iou"],
            "kmeans_child_nmi": b["kmeans_child"]["nmi"], "kmeans_child_acc": b["kmeans_child"]["acc"],
            "kmeans_parent_nmi": b["kmeans_parent"]["nmi"], "kmeans_parent_acc": b["kmeans_parent"]["acc"]}


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_integer("n", 600, "Synthetic images scored.", flag_values=fv)
    synthetic.define_spec_flags(fv)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m onegan_tf.baselines --n 600`: the trivial baselines on the synthetic set."""
    fv = cli.parse(argv, define_flags, usage="python -m onegan_tf.baselines [--n 600] [--seed 0] [--n_parents 4] "
                   "[--children_per_parent 3] [--resolution 128]")
    if fv is None:
        return 2
    for k, v in synthetic_baselines(synthetic.spec_from_flags(fv), fv.n).items():
        print(f"{k:>22s}: {v:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
