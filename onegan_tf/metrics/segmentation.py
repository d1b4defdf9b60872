"""Segmentation metrics: IoU and DICE of the predicted mask I_m against the ground truth (docs/design.md §7).

The reconstruction path runs on real images at the inference betas; the prediction is `I_m > 0.5`, the
ground truth is `mask > 0.5` (masks arrive scaled to [0, 1]). Both the per-image average (the paper's
number) and the dataset-level ratio (sum of intersections / sum of unions) are reported.

Empty case: when prediction and ground truth are both empty (union 0), IoU and DICE are 1.0 -- the
prediction is exactly right. The same convention applies at dataset level.
"""

from __future__ import annotations

import time

import numpy as np

from onegan_tf.metrics import registry

# docs/design.md §7: a pixel is foreground where its mask value exceeds one half, predicted and true alike.
MASK_THRESHOLD = 0.5


def foreground(mask) -> np.ndarray:
    """The boolean foreground of masks in [0, 1] (any shape): mask > MASK_THRESHOLD."""
    return np.asarray(mask) > MASK_THRESHOLD


def mask_overlaps(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image pixel counts of boolean masks [B, ...]: (intersection, union, |pred| + |gt|), int64 [B]."""
    pred = np.asarray(pred, bool).reshape(len(pred), -1)
    gt = np.asarray(gt, bool).reshape(len(gt), -1)
    if pred.shape != gt.shape:
        raise ValueError(f"predicted masks {pred.shape} and ground-truth masks {gt.shape} differ in size")
    intersection = np.sum(pred & gt, axis=1, dtype=np.int64)
    union = np.sum(pred | gt, axis=1, dtype=np.int64)
    total = np.sum(pred, axis=1, dtype=np.int64) + np.sum(gt, axis=1, dtype=np.int64)
    return intersection, union, total


def iou(intersection, union) -> np.ndarray:
    """|P ∩ G| / |P ∪ G|, elementwise; 1.0 where the union is empty."""
    intersection, union = np.asarray(intersection, np.float64), np.asarray(union, np.float64)
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def dice(intersection, total) -> np.ndarray:
    """2 |P ∩ G| / (|P| + |G|), elementwise; 1.0 where both masks are empty."""
    intersection, total = np.asarray(intersection, np.float64), np.asarray(total, np.float64)
    return np.where(total > 0, 2.0 * intersection / np.maximum(total, 1), 1.0)


@registry.register("segmentation", masks=True)
def segmentation(ctx: registry.EvalContext) -> dict[str, float]:
    """IoU and DICE of the reconstruction path's `I_m > 0.5` vs `mask > 0.5`, per image averaged and
    dataset-level, and the path's speed on these images."""

    def predict(images):
        out = ctx.reconstruct(images)
        registry.require_keys(out, ["I_m"], "segmentation", "reconstruct")
        return out["I_m"]

    return mask_scores(ctx, predict, "segmentation")


@registry.register("segmentation_distilled", masks=True)
def segmentation_distilled(ctx: registry.EvalContext) -> dict[str, float]:
    """The same scores for the segmenter distilled from the generator (onegan_tf.distill): one network."""
    if getattr(ctx, "segment", None) is None:
        raise registry.MetricError("metric 'segmentation_distilled' needs a distilled segmenter: train with "
                                   "--distill_steps > 0 (the run's checkpoint has none)")
    return mask_scores(ctx, ctx.segment, "segmentation_distilled")


def mask_scores(ctx, predict, metric: str) -> dict[str, float]:
    """Scores of `predict(images) -> I_m [B, H, W, 1]` over the split; `images_per_s` times every batch after
    the first (which pays for tracing), or the one batch a second time."""
    sums = {"iou": 0.0, "dice": 0.0, "intersection": 0, "union": 0, "total": 0}
    n, timed_images, timed_s = 0, 0, 0.0
    for batch in registry.progress(ctx, ctx.real_batches(), metric):
        t0 = time.perf_counter()
        I_m = np.asarray(predict(batch["image"]))
        if n:
            timed_s += time.perf_counter() - t0
            timed_images += len(I_m)
        pred, gt = foreground(I_m[..., 0]), foreground(batch["mask"])
        if pred.shape != gt.shape:
            raise registry.MetricError(
                f"metric {metric!r}: I_m has shape {pred.shape} but the ground-truth masks {gt.shape}; "
                "masks must be cut and resized like the images")
        inter, union, total = mask_overlaps(pred, gt)
        sums["iou"] += float(iou(inter, union).sum())
        sums["dice"] += float(dice(inter, total).sum())
        sums["intersection"] += int(inter.sum())
        sums["union"] += int(union.sum())
        sums["total"] += int(total.sum())
        n += len(pred)
    if n == 0:
        raise registry.MetricError(f"metric {metric!r}: {registry.dataset_name(ctx)} yielded no images")
    if not timed_images:  # one batch only: time it again, now traced
        t0 = time.perf_counter()
        timed_images = len(np.asarray(predict(batch["image"])))
        timed_s = time.perf_counter() - t0
    return {
        "iou": sums["iou"] / n,
        "dice": sums["dice"] / n,
        "iou_dataset": float(iou(sums["intersection"], sums["union"])),
        "dice_dataset": float(dice(sums["intersection"], sums["total"])),
        "n_images": n,
        "images_per_s": timed_images / max(timed_s, 1e-9),
    }
