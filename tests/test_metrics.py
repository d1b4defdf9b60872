"""docs/design.md §7: the metric math against independent references, and the registered metrics on fake contexts."""

import itertools
import time

import numpy as np
import pytest
from scipy import linalg
from sklearn.metrics import normalized_mutual_info_score

from onegan_tf import metrics
from onegan_tf.metrics import clustering, inception, registry, segmentation, shape_merge

# ---------------------------------------------------------------------------------------------------------
# Clustering: NMI and Hungarian ACC.


@pytest.mark.parametrize("n_clusters,n_classes", [(5, 5), (3, 7), (8, 2), (1, 4), (20, 10)])
def test_nmi_matches_sklearn_arithmetic(n_clusters, n_classes):
    rng = np.random.default_rng(n_clusters * 100 + n_classes)
    for n in (10, 200):
        clusters, classes = rng.integers(0, n_clusters, n), rng.integers(0, n_classes, n)
        expected = normalized_mutual_info_score(classes, clusters, average_method="arithmetic")
        assert clustering.normalized_mutual_info(clusters, classes) == pytest.approx(expected, abs=1e-12)


def test_nmi_edge_cases_follow_sklearn():
    same = np.array([0, 0, 1, 1, 2, 2])
    assert clustering.normalized_mutual_info(same, same) == pytest.approx(1.0)
    assert clustering.normalized_mutual_info(np.zeros(6), np.zeros(6)) == 1.0
    assert clustering.normalized_mutual_info(np.zeros(6), same) == 0.0
    relabelled = np.array([7, 7, 3, 3, 5, 5])
    assert clustering.normalized_mutual_info(relabelled, same) == pytest.approx(1.0)


def _brute_force_accuracy(clusters, classes):
    cluster_ids, class_ids = list(np.unique(clusters)), list(np.unique(classes))
    targets = class_ids + [None] * len(cluster_ids)  # None: a surplus cluster maps to no class
    best = 0
    for assignment in set(itertools.permutations(targets, len(cluster_ids))):
        mapping = dict(zip(cluster_ids, assignment))
        best = max(best, sum(mapping[u] == v for u, v in zip(clusters, classes)))
    return best / len(clusters)


@pytest.mark.parametrize("n_clusters,n_classes", [(3, 3), (2, 4), (4, 2), (4, 4), (1, 3)])
def test_hungarian_accuracy_matches_brute_force(n_clusters, n_classes):
    rng = np.random.default_rng(n_clusters * 10 + n_classes)
    for _ in range(5):
        clusters, classes = rng.integers(0, n_clusters, 15), rng.integers(0, n_classes, 15)
        assert clustering.hungarian_accuracy(clusters, classes) == pytest.approx(
            _brute_force_accuracy(clusters, classes))


def test_hungarian_accuracy_is_one_for_a_permuted_labelling_and_counts_surplus_clusters_as_errors():
    classes = np.repeat(np.arange(6), 5)
    assert clustering.hungarian_accuracy(np.array([3, 5, 0, 1, 4, 2])[classes], classes) == 1.0
    # Two classes split over four clusters: only one cluster per class can be matched.
    assert clustering.hungarian_accuracy([0, 1, 2, 3], [0, 0, 1, 1]) == 0.5


# ---------------------------------------------------------------------------------------------------------
# Segmentation: IoU and DICE.


def test_iou_and_dice_on_hand_made_masks():
    gt = np.zeros((1, 4, 4), bool)
    gt[:, :, :2] = True  # left half: 8 pixels
    pred = np.zeros((1, 4, 4), bool)
    pred[:, :, :1] = True  # left quarter: 4 pixels, inside gt
    inter, union, total = segmentation.mask_overlaps(pred, gt)
    assert (inter[0], union[0], total[0]) == (4, 8, 12)
    assert segmentation.iou(inter, union)[0] == pytest.approx(0.5)
    assert segmentation.dice(inter, total)[0] == pytest.approx(2 * 4 / 12)


def test_iou_and_dice_empty_cases():
    empty, full = np.zeros((1, 3, 3), bool), np.ones((1, 3, 3), bool)
    inter, union, total = segmentation.mask_overlaps(empty, empty)
    assert segmentation.iou(inter, union)[0] == 1.0 and segmentation.dice(inter, total)[0] == 1.0
    inter, union, total = segmentation.mask_overlaps(empty, full)
    assert segmentation.iou(inter, union)[0] == 0.0 and segmentation.dice(inter, total)[0] == 0.0
    inter, union, total = segmentation.mask_overlaps(full, empty)
    assert segmentation.iou(inter, union)[0] == 0.0 and segmentation.dice(inter, total)[0] == 0.0


# ---------------------------------------------------------------------------------------------------------
# Fréchet distance and running statistics.


def test_frechet_distance_closed_form_for_diagonal_covariances():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert inception.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_symmetric_form_on_full_covariances():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 6)), rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6)) + 1.0
    mu1, s1, mu2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    root1 = linalg.sqrtm(s1).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(root1 @ s2 @ root1).real)
    assert inception.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert inception.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_is_finite_for_singular_covariances():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 16)), rng.normal(size=(4, 16))  # 4 samples in 16-d: rank 3 covariances
    value = inception.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert np.isfinite(value) and value > 0


def test_running_gaussian_equals_numpy_mean_and_cov():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(103, 5)).astype(np.float32) * 3 + 7
    stats = inception.RunningGaussian()
    for start, stop in [(0, 1), (1, 40), (40, 41), (41, 103)]:
        stats.update(x[start:stop])
    assert stats.n == 103
    np.testing.assert_allclose(stats.mean, np.mean(x.astype(np.float64), axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Inception score and its conditional variant.


def test_inception_score_uniform_is_one_and_distinct_one_hot_is_k():
    k = 7
    assert inception.inception_score(np.full((20, k), 1 / k), splits=2) == pytest.approx((1.0, 0.0))
    one_hot = np.tile(np.eye(k), (3, 1))
    assert inception.inception_score(one_hot, splits=3) == pytest.approx((k, 0.0))


def test_inception_score_hand_computed():
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    marginal = np.array([0.75, 0.25])
    kl = [np.log(1 / 0.75), 0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)]
    assert inception.inception_score(probs, splits=1)[0] == pytest.approx(np.exp(np.mean(kl)))
    assert marginal.sum() == 1.0


def test_running_inception_score_equals_table_version():
    probs = np.random.default_rng(3).dirichlet(np.full(6, 0.3), size=97)  # 97: splits of unequal size
    running = inception.RunningInceptionScore(97, splits=10)
    for start, stop in [(0, 5), (5, 50), (50, 51), (51, 97)]:
        running.update(probs[start:stop])
    assert running.result() == pytest.approx(inception.inception_score(probs, splits=10), rel=1e-10)


def test_conditional_inception_score_hand_made():
    k = 4
    # Every class's generations are one distinct label: CIS = number of classes (equal counts).
    assert inception.conditional_inception_score(np.eye(k) * 5, np.full(k, 5)) == pytest.approx(k)
    # Every class gives the same mean prediction: CIS = 1.
    same = np.tile([[1.0, 2.0, 1.0]], (3, 1))
    assert inception.conditional_inception_score(same, np.full(3, 4)) == pytest.approx(1.0)
    # Unequal counts weight classes: class 0 (3 images) -> label 0, class 1 (1 image) -> label 1.
    p_y = np.array([0.75, 0.25])
    expected = np.exp(0.75 * np.log(1 / p_y[0]) + 0.25 * np.log(1 / p_y[1]))
    assert inception.conditional_inception_score([[3.0, 0.0], [0.0, 1.0]], [3, 1]) == pytest.approx(expected)


def test_class_conditional_fid_averages_classes_and_skips_tiny_ones():
    rng = np.random.default_rng(4)
    real = {0: rng.normal(size=(10, 3)), 1: rng.normal(size=(10, 3)), 2: rng.normal(size=(1, 3))}
    shifted = {0: real[0] + 1.0, 1: real[1] + 2.0, 2: real[2]}
    value, n_classes = inception.class_conditional_fid(real, shifted)
    assert n_classes == 2
    assert value == pytest.approx((3 * 1.0 + 3 * 4.0) / 2, rel=1e-6)


# ---------------------------------------------------------------------------------------------------------
# Registered metrics on a fake evaluation context.


class MeanColourNet:
    """A stand-in classifier: features = mean colour (D=3); probs = one-hot of the red level (K=5)."""

    def __call__(self, images):
        images = np.asarray(images, np.float64)
        level = np.clip(np.rint((images[:, 0, 0, 0] + 1) * 2), 0, 4).astype(int)
        return images.mean(axis=(1, 2)), np.eye(5)[level]


class UniformNet:
    def __call__(self, images):
        return np.asarray(images, np.float64).mean(axis=(1, 2)), np.full((len(images), 5), 0.2)


class Batch(dict):
    """A batch that counts how many batches are alive at once."""

    live = peak = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Batch.live += 1
        Batch.peak = max(Batch.peak, Batch.live)

    def __del__(self):
        Batch.live -= 1


class FakeContext:
    """Images of child class c have red level c (so MeanColourNet can read the class back)."""

    n_child, n_parent = 4, 2
    has_masks = has_labels = True
    num_generated = 30
    batch_size = 8
    dataset_name = "fake"

    def __init__(self, n_batches=3, batch=6, size=8, shift=0.0, net=None):
        self.n_batches, self.batch, self.size, self.shift = n_batches, batch, size, shift
        self.net = net or MeanColourNet()
        self.calls = {"real_batches": 0, "reconstruct": 0, "generate": [], "generate_like": 0}

    def progress(self, iterable, description):
        return iterable

    def _images(self, child, rng):
        images = rng.uniform(-0.2, 0.2, size=(len(child), self.size, self.size, 3)).astype(np.float32)
        images[:, 0, 0, 0] = child / 2 - 1  # red level c at the corner pixel
        return images

    def real_batches(self):
        self.calls["real_batches"] += 1
        rng = np.random.default_rng(0)
        for k in range(self.n_batches):
            child = np.arange(self.batch) % self.n_child
            mask = np.zeros((self.batch, self.size, self.size), np.float32)
            mask[:, :, : self.size // 2] = 1.0  # left half
            yield Batch(image=self._images(child, rng), child=child, parent=child // 2, mask=mask)

    def reconstruct(self, images):
        self.calls["reconstruct"] += 1
        child = np.rint((images[:, 0, 0, 0] + 1) * 2).astype(int)
        i_m = np.zeros(images.shape[:3] + (1,), np.float32)
        i_m[:, :, : self.size // 4] = 0.9  # left quarter: IoU 0.5, DICE 2/3 against the left half
        return {"I_m": i_m, "I": images, "e_c_logits": np.eye(self.n_child)[(child + 1) % self.n_child],
                "e_p_logits": np.eye(self.n_parent)[1 - child // 2]}

    def generate(self, child, seed):
        self.calls["generate"].append((np.array(child), seed))
        return {"I": self._images(np.asarray(child), np.random.default_rng(seed))}

    def generate_like(self, images, seed):
        self.calls["generate_like"] += 1
        return {"I": images + np.float32(self.shift)}

    def feature_net(self):
        return self.net


def test_segmentation_metric_per_image_and_dataset_level():
    result = metrics.compute(["segmentation"], FakeContext())["segmentation"]
    assert result["n_images"] == 18
    assert result["iou"] == pytest.approx(0.5) and result["iou_dataset"] == pytest.approx(0.5)
    assert result["dice"] == pytest.approx(2 / 3) and result["dice_dataset"] == pytest.approx(2 / 3)


def test_distilled_segmenter_is_scored_like_the_encoder_masks_with_its_speed():
    ctx = FakeContext()

    def segment(images):  # the left three quarters: IoU 2/3, DICE 4/5 against the left half
        out = np.zeros(images.shape[:3] + (1,), np.float32)
        out[:, :, : 3 * ctx.size // 4] = 0.8
        return out

    ctx.segment = segment
    result = metrics.compute(["segmentation", "segmentation_distilled"], ctx)
    assert result["segmentation"]["iou"] == pytest.approx(0.5)
    assert result["segmentation_distilled"]["iou"] == pytest.approx(2 / 3)
    assert result["segmentation_distilled"]["dice"] == pytest.approx(0.8)
    assert result["segmentation_distilled"]["n_images"] == 18
    assert result["segmentation_distilled"]["images_per_s"] > 0
    one_batch = metrics.compute(["segmentation"], FakeContext(n_batches=1))["segmentation"]
    assert np.isfinite(one_batch["images_per_s"]) and one_batch["images_per_s"] > 0


def test_distilled_segmentation_without_a_segmenter_says_how_to_get_one():
    with pytest.raises(metrics.MetricError, match="--distill_steps"):
        metrics.compute(["segmentation_distilled"], FakeContext())


def test_clustering_metric_finds_permuted_clusters():
    result = metrics.compute(["clustering"], FakeContext())["clustering"]
    assert result == pytest.approx({"child_acc": 1.0, "child_nmi": 1.0, "parent_acc": 1.0, "parent_nmi": 1.0,
                                    "n_images": 18})


def test_fid_metric_generates_num_generated_images_from_valid_children():
    ctx = FakeContext()
    result = metrics.compute(["fid"], ctx)["fid"]
    assert result["n_real"] == 18 and result["n_generated"] == 30
    assert np.isfinite(result["fid"]) and result["fid"] >= 0
    sizes = [len(child) for child, _ in ctx.calls["generate"]]
    assert sizes == [8, 8, 8, 6]
    children = np.concatenate([child for child, _ in ctx.calls["generate"]])
    assert children.min() >= 0 and children.max() < ctx.n_child


def test_is_metric_on_uniform_predictions_is_one():
    result = metrics.compute(["is"], FakeContext(net=UniformNet()))["is"]
    assert result["is"] == pytest.approx(1.0) and result["is_std"] == pytest.approx(0.0)
    assert result["n_generated"] == 30


def test_cfid_metric_is_the_squared_shift_of_mean_colour():
    # generate_like adds 0.1 to every pixel: per class the features shift by 0.1 in each of 3 dims and the
    # covariances are unchanged, except the corner pixel's red level which is shifted as well.
    assert metrics.compute(["cfid"], FakeContext(shift=0.0))["cfid"]["cfid"] == pytest.approx(0.0, abs=1e-6)
    result = metrics.compute(["cfid"], FakeContext(shift=0.1))["cfid"]
    assert result["n_classes"] == 4
    assert result["cfid"] == pytest.approx(3 * 0.1 ** 2, rel=1e-4)


def test_cis_metric_counts_distinct_class_predictions():
    # Each real class keeps its red level through generate_like: 4 classes, 4 distinct labels -> CIS = 4.
    result = metrics.compute(["cis"], FakeContext(batch=8))["cis"]
    assert result == pytest.approx({"cis": 4.0, "n_classes": 4, "n_generated": 24})
    # Batches of 6 hold classes 0, 1 twice and 2, 3 once: CIS = exp(H(p̄(y))) with p̄(y) = (2, 2, 1, 1) / 6.
    p_y = np.array([2, 2, 1, 1]) / 6
    expected = np.exp(-np.sum(p_y * np.log(p_y)))
    assert metrics.compute(["cis"], FakeContext(batch=6))["cis"]["cis"] == pytest.approx(expected)
    assert metrics.compute(["cis"], FakeContext(net=UniformNet()))["cis"]["cis"] == pytest.approx(1.0)


def test_metrics_stream_real_batches_without_materialising_them():
    Batch.live = Batch.peak = 0
    ctx = FakeContext(n_batches=50, batch=2)
    metrics.compute(["segmentation", "clustering", "cfid"], ctx)
    # The generator's next batch is built while the loop still holds the current one: at most two alive.
    assert Batch.peak <= 2
    assert ctx.calls["real_batches"] == 3


# ---------------------------------------------------------------------------------------------------------
# Registry.


def test_registry_lists_the_spec_metrics():
    assert metrics.available() == ["cfid", "cis", "clustering", "fid", "is", "segmentation",
                                   "segmentation_distilled"]


def test_unknown_metric_is_rejected_before_anything_runs():
    ctx = FakeContext()
    with pytest.raises(metrics.MetricError, match=r"'psnr'.*known metrics: cfid, cis, clustering, fid"):
        metrics.compute(["segmentation", "psnr"], ctx)
    assert ctx.calls["real_batches"] == 0


def test_missing_masks_and_labels_name_the_metric_and_dataset():
    ctx = FakeContext()
    ctx.has_masks = ctx.has_labels = False
    with pytest.raises(metrics.MetricError, match="metric 'segmentation' needs ground-truth masks; dataset 'fake'"):
        metrics.compute(["segmentation"], ctx)
    for name in ("clustering", "cfid", "cis"):
        with pytest.raises(metrics.MetricError, match=f"metric '{name}' needs child/parent class labels"):
            metrics.compute([name], ctx)


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("fid")(lambda ctx: {})


# ---------------------------------------------------------------------------------------------------------
# Feature network.


def test_feature_network_rejects_unknown_specs():
    with pytest.raises(ValueError, match="unknown feature network 'vgg'.*inception_imagenet"):
        metrics.feature_network("vgg")
    with pytest.raises(FileNotFoundError, match="no such file"):
        metrics.feature_network("/nonexistent/classifier.keras")


def test_inception_random_gives_pool_features_and_probabilities():
    start = time.time()
    with pytest.warns(UserWarning, match="meaningless"):
        net = metrics.feature_network("inception_random")
    images = np.random.default_rng(0).uniform(-1, 1, size=(2, 64, 64, 3)).astype(np.float32)
    features, probs = net(images)
    assert features.shape == (2, 2048) and probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)
    assert not net.meaningful and net.input_size == (299, 299)
    print(f"inception_random: {time.time() - start:.1f} s")


def test_user_classifier_with_logits_gets_softmax_and_penultimate_features(tmp_path):
    import keras

    inputs = keras.Input((12, 12, 3))
    hidden = keras.layers.Dense(7, name="hidden")(keras.layers.Flatten()(inputs))
    logits = keras.layers.Dense(4, name="logits")(hidden)  # linear: FeatureNet applies the softmax
    path = str(tmp_path / "logits.keras")
    keras.Model(inputs, logits).save(path)
    net = metrics.feature_network(path)
    features, probs = net(np.zeros((3, 30, 30, 3), np.float32))
    assert (net.input_size, net.feature_dim, net.num_classes) == ((12, 12), 7, 4)
    assert features.shape == (3, 7) and probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# More parent codes than parent classes: merged by the shape of the predicted masks (shape_merge).

def _blob(size=24):
    """An asymmetric blob mask (an L with a tail), placed off-centre."""
    m = np.zeros((size, size))
    m[4:16, 5:9] = 1.0
    m[12:16, 9:18] = 1.0
    m[6:8, 9:13] = 1.0
    return m


def test_hu_moments_are_invariant_to_shift_quarter_turns_mirrors_and_scale():
    m = _blob()
    poses = [np.roll(m, 3, axis=0), np.rot90(m), np.rot90(m, 3), m[:, ::-1], m[::-1].T]
    hu = shape_merge.hu_moments(np.stack([m] + poses))
    np.testing.assert_allclose(hu[1:, :6], np.repeat(hu[:1, :6], len(poses), 0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.abs(hu[1:, 6]), np.abs(hu[0, 6]), rtol=1e-6)  # the skew one: sign flips in a mirror
    twice = np.kron(m, np.ones((2, 2)))  # the same outline at twice the size
    np.testing.assert_allclose(shape_merge.hu_moments(twice[None])[0, :4], hu[0, :4], rtol=0.05)
    other = np.zeros_like(m)
    other[6:18, 6:18] = 1.0  # a square: not the blob in any pose
    assert np.abs(shape_merge.hu_moments(other[None])[0, :4] - hu[0, :4]).max() > 0.3
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        shape_merge.hu_moments(m)


def test_merge_codes_groups_codes_by_their_images_and_names_unused_codes():
    rng = np.random.default_rng(0)
    codes = np.repeat([0, 1, 2, 4, 5], 20)  # code 3 is never predicted
    centre = {0: 0.0, 1: 0.1, 2: 5.0, 4: 5.1, 5: 0.05}
    features = np.stack([rng.normal(centre[c], 0.05, 3) for c in codes])
    groups = shape_merge.merge_codes(features, codes, n_codes=6, groups=2)
    assert groups[3] == 2  # unused: one more group
    assert groups[0] == groups[1] == groups[5] != groups[2] == groups[4]
    assert list(shape_merge.merge_codes(features[:40], codes[:40], 6, 2)) == [0, 1, 2, 2, 2, 2]  # 2 used codes
    with pytest.raises(ValueError, match=r"codes in \[0, 6\)"):
        shape_merge.merge_codes(features, codes + 2, n_codes=6, groups=2)


class OverclusteredContext(FakeContext):
    """4 parent codes for 2 parent classes: E_p splits each class over two codes; class 0's images are
    segmented as the L-shaped blob and class 1's as a square, each in several poses."""

    n_parent = 4

    def reconstruct(self, images):
        out = super().reconstruct(images)
        child = np.rint((images[:, 0, 0, 0] + 1) * 2).astype(int)
        parent = child // 2
        blob, square = _blob(self.size), np.zeros((self.size, self.size))
        square[2:6, 2:6] = 1.0
        masks = [np.rot90(blob, c) if p == 0 else np.roll(square, c, 0) for c, p in zip(child, parent)]
        out["I_m"] = np.stack(masks)[..., None].astype(np.float32)
        out["e_p_logits"] = np.eye(4)[2 * parent + child % 2]  # codes {0, 1} for class 0, {2, 3} for class 1
        return out


def test_clustering_scores_more_parent_codes_merged_by_shape():
    result = metrics.compute(["clustering"], OverclusteredContext(size=24))["clustering"]
    assert result["parent_classes"] == 2
    assert result["parent_merged_nmi"] == pytest.approx(1.0) and result["parent_merged_acc"] == pytest.approx(1.0)
    assert result["parent_acc"] == pytest.approx(0.5)  # 4 clusters one-to-one onto 2 classes
    assert "parent_merged_nmi" not in metrics.compute(["clustering"], FakeContext())["clustering"]


def test_report_rows_name_unmerged_and_merged_parent_codes():
    from onegan_tf.report import metric_rows

    base = {"kmeans_child": {"k": 12, "acc": 0.3, "nmi": 0.35},
            "kmeans_parent": {"k": 4, "acc": 0.31, "nmi": 0.02, "chance_acc": 0.25}}
    plain = {"child_acc": 0.5, "child_nmi": 0.6, "parent_acc": 0.3, "parent_nmi": 0.26}
    rows = {r[1]: r[2:] for r in metric_rows({"metrics": {"clustering": plain}}, base)}
    assert rows["parent NMI"] == ("0.260", "k-means on pixels (k=4) 0.020") and len(rows) == 4
    merged = dict(plain, parent_merged_acc=0.38, parent_merged_nmi=0.12, parent_classes=4)
    rows = {r[1]: r[2:] for r in metric_rows({"metrics": {"clustering": merged}}, base)}
    assert rows["parent NMI, codes unmerged"] == ("0.260", "k-means on pixels (k=4) 0.020")
    assert rows["parent NMI, codes merged by shape into 4"] == ("0.120", "k-means on pixels (k=4) 0.020")
    assert rows["parent ACC, codes merged by shape into 4"][0] == "0.380" and len(rows) == 6
