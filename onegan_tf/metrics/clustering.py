"""Clustering metrics: ACC (Hungarian matching) and NMI of `argmax ê_c(E_c(x))` (docs/design.md §7).

Clusters are the argmax of the encoders' logits on real images; classes are the true labels. The same is
done for parents (`argmax ê_p`); with more parent codes than parent classes they are also scored merged by
shape into as many groups as there are classes (`shape_merge`). The math lives in small numpy functions
computed from the contingency table; scikit-learn is used only by the tests, as an independent reference.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from onegan_tf.metrics import registry
from onegan_tf.metrics.shape_merge import merge_codes, shape_features


def contingency_table(clusters, classes) -> np.ndarray:
    """Counts n[i, j] of items in the i-th observed cluster and the j-th observed class (int64)."""
    clusters, classes = np.asarray(clusters).ravel(), np.asarray(classes).ravel()
    if clusters.shape != classes.shape:
        raise ValueError(f"{clusters.size} cluster ids but {classes.size} class labels")
    _, cluster_idx = np.unique(clusters, return_inverse=True)
    _, class_idx = np.unique(classes, return_inverse=True)
    table = np.zeros((cluster_idx.max(initial=-1) + 1, class_idx.max(initial=-1) + 1), np.int64)
    np.add.at(table, (cluster_idx, class_idx), 1)
    return table


def hungarian_accuracy(clusters, classes) -> float:
    """Fraction of items whose cluster maps to their class under the best one-to-one mapping.

    With more clusters than classes the surplus clusters map to nothing and count as errors (and vice
    versa), as in the paper's protocol of a one-to-one cluster -> class mapping.
    """
    table = contingency_table(clusters, classes)
    if table.size == 0:
        raise ValueError("accuracy of an empty labelling")
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def normalized_mutual_info(clusters, classes) -> float:
    """NMI with arithmetic normalisation: I(U; V) / ((H(U) + H(V)) / 2), natural log.

    Follows sklearn's conventions at the edges: two single-cluster labellings score 1.0; zero mutual
    information scores 0.0.
    """
    table = contingency_table(clusters, classes).astype(np.float64)
    if table.shape[0] == table.shape[1] == 1:
        return 1.0
    n = table.sum()
    a, b = table.sum(axis=1), table.sum(axis=0)
    i, j = np.nonzero(table)
    nij = table[i, j]
    mi = float(np.sum(nij / n * (np.log(nij * n) - np.log(a[i] * b[j]))))
    mi = max(mi, 0.0)  # rounding can leave a tiny negative value for independent labellings
    if mi == 0.0:
        return 0.0
    return mi / ((_entropy(a) + _entropy(b)) / 2.0)


@registry.register("clustering", labels=True)
def clustering(ctx: registry.EvalContext) -> dict[str, float]:
    """ACC and NMI of the encoders' argmax against the true child and parent labels; where the model has
    more parent codes than the split has parent classes, also of the parents merged by shape
    (`parent_merged_acc`, `parent_merged_nmi`, into `parent_classes` groups)."""
    ids = {"child": [], "parent": [], "child_pred": [], "parent_pred": []}
    shapes = []  # per image: the shape features of the predicted mask (shape_merge)
    for batch in registry.progress(ctx, ctx.real_batches(), "clustering"):
        out = ctx.reconstruct(batch["image"])
        registry.require_keys(out, ["e_c_logits", "e_p_logits", "I_m"], "clustering", "reconstruct")
        shapes.append(shape_features(np.asarray(out["I_m"])[..., 0]))
        ids["child_pred"].append(np.argmax(out["e_c_logits"], axis=-1))
        ids["parent_pred"].append(np.argmax(out["e_p_logits"], axis=-1))
        ids["child"].append(np.asarray(batch["child"]).ravel())
        ids["parent"].append(np.asarray(batch["parent"]).ravel())
    if not ids["child"]:
        raise registry.MetricError(f"metric 'clustering': {registry.dataset_name(ctx)} yielded no images")
    ids = {k: np.concatenate(v) for k, v in ids.items()}
    result = {
        "child_acc": hungarian_accuracy(ids["child_pred"], ids["child"]),
        "child_nmi": normalized_mutual_info(ids["child_pred"], ids["child"]),
        "parent_acc": hungarian_accuracy(ids["parent_pred"], ids["parent"]),
        "parent_nmi": normalized_mutual_info(ids["parent_pred"], ids["parent"]),
        "n_images": int(len(ids["child"])),
    }
    classes = len(np.unique(ids["parent"]))
    if ctx.n_parent > classes:
        group = merge_codes(np.concatenate(shapes), ids["parent_pred"], ctx.n_parent, classes)
        merged = group[ids["parent_pred"]]
        result.update(parent_merged_acc=hungarian_accuracy(merged, ids["parent"]),
                      parent_merged_nmi=normalized_mutual_info(merged, ids["parent"]),
                      parent_classes=classes)
    return result
