"""The trivial baselines behind every "OneGAN vs baseline" number, on cases whose scores are known by hand."""

import numpy as np
import pytest

from onegan_tf import baselines


def test_all_foreground_scores_each_mask_by_its_area():
    """An all-object prediction has IoU = area and DICE = 2 area / (1 + area) per image; then the mean."""
    quarter = np.zeros((4, 4), bool)
    quarter[:2, :2] = True
    gt = np.stack([quarter, np.ones((4, 4), bool)])
    scores = baselines.all_foreground(gt)
    assert scores["iou"] == pytest.approx((0.25 + 1.0) / 2)
    assert scores["dice"] == pytest.approx((2 * 0.25 / 1.25 + 1.0) / 2)


@pytest.mark.parametrize("fraction", [0.1, 0.27, 0.5])
def test_the_disc_covers_the_area_fraction_it_is_given_and_is_centred(fraction):
    disc = baselines.disc_mask(200, fraction)
    assert disc.mean() == pytest.approx(fraction, abs=0.002)
    np.testing.assert_array_equal(disc, disc[::-1])
    np.testing.assert_array_equal(disc, disc[:, ::-1])
    np.testing.assert_array_equal(disc, disc.T)


def test_centred_disc_is_perfect_on_its_own_disc_and_reports_the_training_area():
    gt = np.broadcast_to(baselines.disc_mask(64, 0.3), (3, 64, 64))
    scores = baselines.centred_disc(gt, 0.3)
    assert scores == {"iou": 1.0, "dice": 1.0, "area_fraction": 0.3}
    half = baselines.centred_disc(gt, 0.15)   # a disc of half the area, inside the object
    assert half["iou"] == pytest.approx(0.5, abs=0.02)


def test_border_colour_separates_an_object_unlike_its_border():
    """A uniform background with a square of another colour: the distance from the border colour is 0 on the
    background and sqrt(3) on the object, so the smallest threshold already segments it exactly."""
    images = np.full((2, 16, 16, 3), -0.5, np.float32)
    gt = np.zeros((2, 16, 16), bool)
    gt[0, 4:10, 5:12] = True
    gt[1, 2:6, 2:14] = True
    images[gt] = (0.5, 1.0, -1.0)
    scores = baselines.border_colour(images, gt)
    assert scores["iou"] == 1.0 and scores["dice"] == 1.0
    assert scores["threshold"] == pytest.approx(baselines.BORDER_THRESHOLDS[0])


def test_border_colour_picks_the_threshold_that_scores_best():
    """Object pixels at distance 0.5 from the border colour, a distractor at 0.25: only thresholds in
    [0.25, 0.5) keep the object and drop the distractor."""
    images = np.zeros((1, 20, 20, 3), np.float32)
    gt = np.zeros((1, 20, 20), bool)
    gt[0, 5:15, 5:15] = True
    images[gt] = (1.0, 0.0, 0.0)          # |(1, 0, 0)| / 2 = 0.5
    images[0, 1:4, 8:12] = (0.5, 0.0, 0.0)   # 0.25
    scores = baselines.border_colour(images, gt)
    assert scores["iou"] == 1.0
    assert 0.25 <= scores["threshold"] < 0.5


def _clusters(n_per, colours, seed=0):
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, colour in enumerate(colours):
        images.append(np.asarray(colour, np.float32) + 0.02 * rng.standard_normal((n_per, 32, 32, 3)))
        labels += [label] * n_per
    order = rng.permutation(len(labels))
    return np.concatenate(images)[order], np.array(labels)[order]


def test_kmeans_finds_separable_clusters_whatever_their_label_order():
    images, labels = _clusters(10, [(-0.8, -0.8, -0.8), (0.8, -0.8, 0.0), (0.0, 0.8, 0.8)])
    scores = baselines.kmeans_pixels(images, (labels + 1) % 3, 3)
    assert scores["acc"] == pytest.approx(1.0) and scores["nmi"] == pytest.approx(1.0) and scores["k"] == 3


def test_kmeans_cannot_separate_labels_the_pixels_do_not_show():
    images, labels = _clusters(12, [(0.0, 0.0, 0.0)] * 2)
    scores = baselines.kmeans_pixels(images, labels, 2)
    assert scores["nmi"] < 0.2


def test_all_baselines_report_chance_for_parents_and_skip_clustering_without_labels():
    images, child = _clusters(4, [(-0.8, -0.8, -0.8), (0.8, -0.8, 0.0), (0.0, 0.8, 0.8), (0.8, 0.8, 0.8)])
    parent = np.where(child < 3, 0, 1)   # 12 of 16 images in parent 0
    masks = np.zeros(images.shape[:3], bool)
    masks[:, 8:24, 8:24] = True
    out = baselines.all_baselines(images, masks, child, parent, 0.25, n_child=4, n_parent=2)
    assert out["kmeans_parent"]["chance_acc"] == pytest.approx(12 / 16)
    assert out["kmeans_child"]["acc"] == pytest.approx(1.0)
    assert out["centred_disc"]["area_fraction"] == 0.25
    unlabelled = baselines.all_baselines(images, masks, None, None, 0.25, n_child=4, n_parent=2)
    assert set(unlabelled) == {"all_foreground", "centred_disc", "border_colour"}
