"""Inception-based metrics: FID, IS, CFID, CIS, and the feature network they share (docs/design.md §7).

* FID: Fréchet distance between Gaussians fitted to classifier pool features of real and generated images.
  Real statistics stream: the sum and the sum of outer products are accumulated in float64, so memory is
  D + D² numbers whatever the number of images.
* IS: exp(E_x KL(p(y|x) || p(y))) in `splits` consecutive chunks of the generated images; mean and std.
* CFID: for every real child class c, the FID between the real images of c and the images generated from
  their encoded codes (`ctx.generate_like`); averaged over classes. Per-class statistics need the per-image
  features of both sides (2 × N × D float32; for CUB, 2 × 11788 × 2048 × 4 B ≈ 190 MB), which is far less
  than per-class D×D accumulators would need (2 × 200 × 2048² × 8 B ≈ 13 GB). Classes with fewer than two
  images have no covariance and are skipped; `n_classes` says how many were used.
* CIS: exp(E_c KL(p̄(y|c) || p̄(y))) where generated images are grouped by the real child class c of their
  source image, p̄(y|c) is the mean prediction over group c, p̄(y) the mean over all generated images, and
  E_c weights each class by its number of images (the class distribution of the evaluation set). With
  these weights p̄(y) = E_c p̄(y|c), so log CIS is the mutual information between source class and
  predicted label.

The classifier is `feature_network(spec)`: InceptionV3 with ImageNet weights (the default of the paper's
protocol when no fine-tuned classifier is given), InceptionV3 with random weights (tests and offline smoke
runs only: its numbers mean nothing), or a user's `.keras` classifier such as the one
`python -m onegan_tf.classifier` fine-tunes.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict

import keras
import numpy as np
import tensorflow as tf
from scipy import linalg
from scipy.special import xlogy

from onegan_tf.metrics import registry

FEATURE_NETWORKS = ("inception_imagenet", "inception_random")
INCEPTION_SIZE = 299
IS_SPLITS = 10  # the splits of the Inception Score (mean and std over them)


# ---------------------------------------------------------------------------------------------------------
# Pure math.

class RunningGaussian:
    """Mean and covariance of feature vectors seen in batches (float64 sums; memory independent of N)."""

    def __init__(self, dim: int | None = None):
        self.n = 0
        self.sum = None if dim is None else np.zeros(dim, np.float64)
        self.sum_outer = None if dim is None else np.zeros((dim, dim), np.float64)

    def update(self, features: np.ndarray) -> None:
        x = np.asarray(features, np.float64).reshape(len(features), -1)
        if self.sum is None:
            self.sum = np.zeros(x.shape[1], np.float64)
            self.sum_outer = np.zeros((x.shape[1], x.shape[1]), np.float64)
        self.n += len(x)
        self.sum += x.sum(axis=0)
        self.sum_outer += x.T @ x

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.n

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (divides by n - 1, like np.cov)."""
        if self.n < 2:
            raise ValueError(f"covariance of {self.n} feature vector(s) is undefined; need at least 2")
        mean = self.mean
        return (self.sum_outer - self.n * np.outer(mean, mean)) / (self.n - 1)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½), the Fréchet distance of two Gaussians.

    As pytorch-fid: when the product is near-singular and its square root is not finite, eps is added to
    both diagonals; a complex square root with negligible imaginary diagonal is replaced by its real part.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"Gaussians of different dimension: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has an imaginary component of {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _kl(p, q, axis=-1):
    return np.sum(xlogy(p, p) - xlogy(p, q), axis=axis)


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) on each of `splits` consecutive chunks (np.array_split); (mean, std)."""
    probs = np.asarray(probs, np.float64)
    if len(probs) < splits:
        raise ValueError(f"inception score over {splits} splits needs at least {splits} images, got {len(probs)}")
    scores = [np.exp(np.mean(_kl(part, part.mean(axis=0, keepdims=True)))) for part in np.array_split(probs, splits)]
    return float(np.mean(scores)), float(np.std(scores))


class RunningInceptionScore:
    """`inception_score` over a stream of prob batches, holding per-split sums instead of the prob table.

    KL(p(y|x) || p̄(y)) averaged over a chunk is mean_x Σ p log p − Σ p̄ log p̄, so each chunk needs only
    Σ_x p(y|x), Σ_x Σ_y p log p and its count. Chunks are those of np.array_split(range(n_total), splits).
    """

    def __init__(self, n_total: int, splits: int = 10):
        if n_total < splits:
            raise ValueError(f"inception score over {splits} splits needs at least {splits} images, got {n_total}")
        self.n_total, self.splits, self.seen = n_total, splits, 0
        sizes = [n_total // splits + (1 if s < n_total % splits else 0) for s in range(splits)]
        self._ends = np.cumsum(sizes)
        self._prob_sum = None
        self._neg_entropy_sum = np.zeros(splits, np.float64)
        self._count = np.zeros(splits, np.int64)

    def update(self, probs: np.ndarray) -> None:
        probs = np.asarray(probs, np.float64)
        if self._prob_sum is None:
            self._prob_sum = np.zeros((self.splits, probs.shape[1]), np.float64)
        index = np.arange(self.seen, self.seen + len(probs))
        if len(index) and index[-1] >= self.n_total:
            raise ValueError(f"more than the announced {self.n_total} images")
        split = np.searchsorted(self._ends, index, side="right")
        np.add.at(self._prob_sum, split, probs)
        np.add.at(self._neg_entropy_sum, split, np.sum(xlogy(probs, probs), axis=1))
        np.add.at(self._count, split, 1)
        self.seen += len(probs)

    def result(self) -> tuple[float, float]:
        if self.seen != self.n_total:
            raise ValueError(f"saw {self.seen} images of the announced {self.n_total}")
        marginal = self._prob_sum / self._count[:, None]
        mean_kl = self._neg_entropy_sum / self._count - np.sum(xlogy(marginal, marginal), axis=1)
        scores = np.exp(mean_kl)
        return float(np.mean(scores)), float(np.std(scores))


def conditional_inception_score(class_prob_sums: np.ndarray, class_counts: np.ndarray) -> float:
    """CIS = exp(Σ_c w_c KL(p̄(y|c) || p̄(y))), w_c = n_c / N, from per-class sums of predictions.

    class_prob_sums [C, K]: Σ of p(y|x) over the generated images of class c; class_counts [C]: their
    number. Classes with no images are ignored.
    """
    sums = np.asarray(class_prob_sums, np.float64)
    counts = np.asarray(class_counts, np.float64)
    keep = counts > 0
    sums, counts = sums[keep], counts[keep]
    if len(counts) == 0:
        raise ValueError("conditional inception score of no images")
    p_y_given_c = sums / counts[:, None]
    p_y = sums.sum(axis=0) / counts.sum()
    weights = counts / counts.sum()
    return float(np.exp(np.sum(weights * _kl(p_y_given_c, p_y[None]))))


def class_conditional_fid(real: dict[int, np.ndarray], generated: dict[int, np.ndarray]) -> tuple[float, int]:
    """Mean over classes of frechet_distance(real[c], generated[c]); classes with < 2 images on a side skip.

    Returns (mean FID, number of classes used).
    """
    fids = []
    for c in sorted(real):
        x, y = np.asarray(real[c], np.float64), np.asarray(generated.get(c, ()), np.float64)
        if len(x) < 2 or len(y) < 2:
            continue
        fids.append(frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)))
    if not fids:
        raise ValueError("no class has two or more images on both sides; CFID is undefined")
    return float(np.mean(fids)), len(fids)


# ---------------------------------------------------------------------------------------------------------
# The feature network.

class FeatureNet:
    """A classifier seen as images in [-1, 1] -> (pool features float64 [B, D], class probs float64 [B, K]).

    Images of any size are resized bilinearly to `input_size` inside the call; large inputs are run in
    chunks of `batch_size`. `meaningful` is False for random weights: such numbers only test the plumbing.
    """

    def __init__(self, model, input_size: tuple[int, int], name: str, meaningful: bool = True,
                 batch_size: int = 50):
        self.model, self.input_size, self.name = model, tuple(int(s) for s in input_size), name
        self.meaningful, self.batch_size = meaningful, batch_size
        self.feature_dim = int(np.prod(model.outputs[0].shape[1:]))
        self.num_classes = int(model.outputs[1].shape[-1])

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)], reduce_retracing=True)
        def forward(images):
            features, probs = model(tf.image.resize(images, self.input_size, method="bilinear"), training=False)
            return features, probs

        self._forward = forward

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"FeatureNet {self.name!r} takes RGB images [B, H, W, 3]; got shape {images.shape}")
        features, probs = [], []
        for start in range(0, len(images), self.batch_size):
            f, p = self._forward(images[start:start + self.batch_size])
            features.append(np.asarray(f, np.float64).reshape(len(f), -1))
            probs.append(np.asarray(p, np.float64))
        if not features:
            return np.zeros((0, self.feature_dim)), np.zeros((0, self.num_classes))
        return np.concatenate(features), np.concatenate(probs)

    def __repr__(self):
        note = "" if self.meaningful else ", RANDOM WEIGHTS: numbers are meaningless"
        return f"FeatureNet({self.name!r}, {self.input_size}, D={self.feature_dim}, K={self.num_classes}{note})"


def _inception(weights):
    base = keras.applications.InceptionV3(include_top=True, weights=weights)
    # InceptionV3 takes [-1, 1] (its preprocess_input), the project's convention: no rescaling needed.
    return keras.Model(base.inputs, [base.get_layer("avg_pool").output, base.output], name="inception_v3_features")


def _user_classifier(path: str):
    model = keras.saving.load_model(path, compile=False)
    names = [layer.name for layer in model.layers]
    features_layer = model.get_layer("features") if "features" in names else model.layers[-2]
    last = model.layers[-1]
    outputs = model.outputs[0]
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if activation == "linear":
        outputs = keras.layers.Softmax(name="probs")(outputs)
    elif activation != "softmax" and not isinstance(last, keras.layers.Softmax):
        raise ValueError(f"classifier {path}: the last layer {last.name!r} must output class probabilities "
                         f"(softmax) or logits (linear Dense); its activation is {activation or type(last).__name__!r}")
    size = model.input_shape[1:3]
    if None in size:
        raise ValueError(f"classifier {path}: input shape {model.input_shape} needs a fixed height and width")
    return keras.Model(model.inputs, [features_layer.output, outputs], name="user_classifier_features"), size


def feature_network(spec: str, batch_size: int = 50) -> FeatureNet:
    """The classifier of FID/IS/CFID/CIS, named by `spec`:
    * "inception_imagenet": keras.applications.InceptionV3 with ImageNet weights (Keras downloads them on
      first use into ~/.keras/models); features = the 2048-d global average pool, probs = the 1000-way
      softmax; 299×299 input.
    * "inception_random": the same network with random weights, for tests and offline smoke runs. The
      numbers it gives are meaningless.
    * a path to a `.keras` classifier (e.g. from `python -m onegan_tf.classifier`). Expected structure: one
      input [None, H, W, 3] of fixed H, W taking images in [-1, 1]; one output of class probabilities
      (softmax) or logits (a Dense with linear activation, softmax is then applied here). The features are
      the output of the layer named "features" if there is one, else of the layer before the last.
    """
    if spec == "inception_imagenet":
        return FeatureNet(_inception("imagenet"), (INCEPTION_SIZE, INCEPTION_SIZE), spec, batch_size=batch_size)
    if spec == "inception_random":
        warnings.warn("feature network 'inception_random' has random weights: FID/IS values are meaningless")
        return FeatureNet(_inception(None), (INCEPTION_SIZE, INCEPTION_SIZE), spec, meaningful=False,
                          batch_size=batch_size)
    if spec.endswith(".keras"):
        if not os.path.exists(spec):
            raise FileNotFoundError(f"feature network {spec!r}: no such file (train one with "
                                    "`python -m onegan_tf.classifier --out=...`)")
        model, size = _user_classifier(spec)
        return FeatureNet(model, size, spec, batch_size=batch_size)
    raise ValueError(f"unknown feature network {spec!r}; use one of {', '.join(FEATURE_NETWORKS)} "
                     "or a path to a .keras classifier")


# ---------------------------------------------------------------------------------------------------------
# Registered metrics.

def _seed(ctx) -> int:
    return int(getattr(ctx, "seed", 0))


def _generated_images(ctx, metric: str):
    """ctx.num_generated images from uniformly drawn child classes, in batches of ctx.batch_size (50)."""
    n, batch_size = int(ctx.num_generated), int(getattr(ctx, "batch_size", 50))
    if n <= 0:
        raise registry.MetricError(f"metric {metric!r} needs num_generated > 0; got {n}")
    rng = np.random.default_rng(_seed(ctx))
    starts = range(0, n, batch_size)
    for k, start in enumerate(registry.progress(ctx, starts, f"{metric}: generated images")):
        child = rng.integers(0, ctx.n_child, size=min(batch_size, n - start))
        out = ctx.generate(child, seed=_seed(ctx) + k)
        registry.require_keys(out, ["I"], metric, "generate")
        yield out["I"]


@registry.register("fid", min_generated=2)  # a covariance
def fid(ctx: registry.EvalContext) -> dict[str, float]:
    """FID between the evaluation set and ctx.num_generated images from uniformly drawn child classes."""
    net = ctx.feature_net()
    real, generated = RunningGaussian(), RunningGaussian()
    for batch in registry.progress(ctx, ctx.real_batches(), "fid: real images"):
        real.update(net(batch["image"])[0])
    for images in _generated_images(ctx, "fid"):
        generated.update(net(images)[0])
    if real.n < 2:
        raise registry.MetricError(f"metric 'fid' needs at least 2 real images; "
                                   f"{registry.dataset_name(ctx)} gave {real.n}")
    return {"fid": frechet_distance(real.mean, real.cov, generated.mean, generated.cov),
            "n_real": real.n, "n_generated": generated.n}


@registry.register("is", min_generated=IS_SPLITS)  # one image per split
def inception_score_metric(ctx: registry.EvalContext, splits: int = IS_SPLITS) -> dict[str, float]:
    """IS of ctx.num_generated images from uniformly drawn child classes; mean and std over 10 splits."""
    net = ctx.feature_net()
    score = RunningInceptionScore(int(ctx.num_generated), splits)
    for images in _generated_images(ctx, "is"):
        score.update(net(images)[1])
    mean, std = score.result()
    return {"is": mean, "is_std": std, "n_generated": score.seen, "splits": splits}


def _real_and_generated_like(ctx, metric: str):
    """Yield (child labels, real images, images generated from the real images' encoded codes)."""
    for k, batch in enumerate(registry.progress(ctx, ctx.real_batches(), metric)):
        out = ctx.generate_like(batch["image"], seed=_seed(ctx) + k)
        registry.require_keys(out, ["I"], metric, "generate_like")
        yield np.asarray(batch["child"]).ravel(), batch["image"], out["I"]


@registry.register("cfid", labels=True)
def cfid(ctx: registry.EvalContext) -> dict[str, float]:
    """Mean over real child classes of the FID between a class's real images and the images made from them."""
    net = ctx.feature_net()
    real, generated = defaultdict(list), defaultdict(list)
    n = 0
    for child, images, fakes in _real_and_generated_like(ctx, "cfid"):
        f_real, f_fake = net(images)[0].astype(np.float32), net(fakes)[0].astype(np.float32)
        for c in np.unique(child):
            real[int(c)].append(f_real[child == c])
            generated[int(c)].append(f_fake[child == c])
        n += len(child)
    real = {c: np.concatenate(v) for c, v in real.items()}
    generated = {c: np.concatenate(v) for c, v in generated.items()}
    try:
        value, n_classes = class_conditional_fid(real, generated)
    except ValueError as e:
        raise registry.MetricError(f"metric 'cfid': {e} in {registry.dataset_name(ctx)}") from e
    return {"cfid": value, "n_classes": n_classes, "n_real": n, "n_generated": n}


@registry.register("cis", labels=True)
def cis(ctx: registry.EvalContext) -> dict[str, float]:
    """CIS of images generated from real images' codes, grouped by the real child class of their source."""
    net = ctx.feature_net()
    sums, counts = None, np.zeros(ctx.n_child, np.int64)
    for child, _, fakes in _real_and_generated_like(ctx, "cis"):
        probs = net(fakes)[1]
        if sums is None:
            sums = np.zeros((ctx.n_child, probs.shape[1]), np.float64)
        if child.size and (child.min() < 0 or child.max() >= ctx.n_child):
            raise registry.MetricError(f"metric 'cis': child label {int(child.max())} outside [0, {ctx.n_child})")
        np.add.at(sums, child, probs)
        np.add.at(counts, child, 1)
    if sums is None:
        raise registry.MetricError(f"metric 'cis': {registry.dataset_name(ctx)} yielded no images")
    return {"cis": conditional_inception_score(sums, counts), "n_classes": int(np.sum(counts > 0)),
            "n_generated": int(counts.sum())}
