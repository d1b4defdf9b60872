"""More parent codes than parent classes, merged by the shape of what they segment (docs/design.md §7).

A run may train N_P parent codes for F < N_P parent classes (`--n_parent` above the data's parents): each
class can then take several codes, and E_p's N_P clusters of real images are merged into F groups, without
labels, before they are scored against the classes. Each real image's predicted mask Î_m is described by the
first `HU_USED` of its seven Hu moments (invariant to position, scale, quarter turns and mirrors: the pose a
code's images vary in), each code by the median of those over the images E_p assigns to it, and the codes,
standardised per moment, are cut into F groups by average-linkage clustering of their Euclidean distances.
This rule was chosen among 18 variants on seven over-clustered runs (`docs/parents/merge_variants.py`).
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

HU_USED = 4  # the last three Hu moments are near zero and noisy for the blob-like masks of small images


def hu_moments(masks) -> np.ndarray:
    """The seven Hu invariants of each (H, W) mask in [0, 1] (soft masks weigh each pixel), sign-preserving
    log10-scaled: shape (N, 7). All are invariant to shifts, scale and turns; the seventh changes sign in a
    mirror. An empty mask gives zeros, not NaN. Vectorised over the masks: a central moment is a sum over
    rows and columns of the mask times powers of each pixel's row and column offsets from the centroid."""
    masks = np.asarray(masks, np.float64)
    if masks.ndim != 3:
        raise ValueError(f"hu_moments: masks must be (N, H, W); got shape {masks.shape}")
    _, h, w = masks.shape
    y, x = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    m00 = masks.sum((1, 2)) + 1e-9
    dy = y[None, :] - (np.einsum("nhw,h->n", masks, y) / m00)[:, None]  # (N, H)
    dx = x[None, :] - (np.einsum("nhw,w->n", masks, x) / m00)[:, None]  # (N, W)

    def eta(p, q):
        return np.einsum("nhw,nh,nw->n", masks, dy**q, dx**p) / m00 ** (1 + (p + q) / 2)
    n20, n02, n11 = eta(2, 0), eta(0, 2), eta(1, 1)
    n30, n03, n21, n12 = eta(3, 0), eta(0, 3), eta(2, 1), eta(1, 2)
    a, b = n30 + n12, n21 + n03
    out = np.stack([n20 + n02,
                    (n20 - n02) ** 2 + 4 * n11**2,
                    (n30 - 3 * n12) ** 2 + (3 * n21 - n03) ** 2,
                    a**2 + b**2,
                    (n30 - 3 * n12) * a * (a**2 - 3 * b**2) + (3 * n21 - n03) * b * (3 * a**2 - b**2),
                    (n20 - n02) * (a**2 - b**2) + 4 * n11 * a * b,
                    (3 * n21 - n03) * a * (a**2 - 3 * b**2) - (n30 - 3 * n12) * b * (3 * a**2 - b**2)], axis=1)
    return -np.sign(out) * np.log10(np.abs(out) + 1e-30)


def merge_codes(features, codes, n_codes: int, groups: int, statistic=np.median,
                method: str = "average") -> np.ndarray:
    """Group (0..groups-1) of each of `n_codes` codes from per-image `features` [N, k] and the code E_p gives
    each image (`codes` [N]): one `statistic` per code over its images, standardised across codes, `method`
    linkage of Euclidean distances cut at `groups`. Codes no image is given share group `groups` (one more);
    with no more used codes than groups each used code is its own group."""
    features, codes = np.asarray(features, np.float64), np.asarray(codes).ravel()
    if features.ndim != 2 or len(features) != len(codes):
        raise ValueError(f"merge_codes: features must be (N, k) with one row per code; got {features.shape} "
                         f"for {len(codes)} codes")
    if groups < 1 or len(codes) == 0 or codes.min() < 0 or codes.max() >= n_codes:
        raise ValueError(f"merge_codes: need groups >= 1 and codes in [0, {n_codes}); got groups={groups}, "
                         f"codes in [{codes.min(initial=0)}, {codes.max(initial=0)}]")
    used = np.unique(codes)
    out = np.full(n_codes, groups)
    if len(used) <= groups:
        out[used] = np.arange(len(used))
        return out
    per_code = np.stack([statistic(features[codes == c], axis=0) for c in used])
    per_code = (per_code - per_code.mean(0)) / (per_code.std(0) + 1e-9)
    out[used] = fcluster(linkage(per_code, method, metric="euclidean"), groups, "maxclust") - 1
    return out


def shape_features(masks) -> np.ndarray:
    """What the kept rule reads of each predicted mask [N, H, W]: its first HU_USED Hu moments, (N, HU_USED)."""
    return hu_moments(masks)[:, :HU_USED]


def merge_by_shape(masks, codes, n_codes: int, groups: int) -> np.ndarray:
    """The kept rule: `merge_codes` (median per code, average linkage) on the masks' `shape_features`."""
    return merge_codes(shape_features(masks), codes, n_codes, groups)
