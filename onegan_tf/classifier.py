"""Fine-tune the classifier of FID/IS/CFID/CIS on a labelled image dataset (docs/design.md §7; paper Sec. 5).

The paper computed FID and IS with an InceptionV3 fine-tuned per dataset. This command trains such a
classifier and saves it as a `.keras` file that `--feature_net=<path>` (metrics.inception.feature_network)
loads: one input of fixed size taking images in [-1, 1], a layer named "features" (the pool features of
FID) and a softmax output named "predictions" (the class probabilities of IS).

    python -m onegan_tf.classifier --data=/data/cub_by_class --out=cub_inception.keras \
        --backbone=inception_v3 --weights=imagenet --epochs=10
    python -m onegan_tf.classifier --data=synthetic --out=synthetic_cnn.keras --backbone=small_cnn

`--data` is a folder laid out as `<root>/<class_name>/*.jpg|png` (classes are the sub-folders, sorted by
name) or `synthetic` for the built-in synthetic set (`onegan_tf.data.synthetic`), labelled by child or
parent class; images are centre-cropped to a square and resized (`onegan_tf.data.labeled`). A seeded
`--val_fraction` of the images is held out and its accuracy is reported.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import keras
import numpy as np
from absl import flags

from onegan_tf import cli
from onegan_tf.data import labeled

BACKBONES = ("inception_v3", "small_cnn")
WEIGHTS = ("imagenet", "none")
DEFAULT_IMAGE_SIZE = {"inception_v3": 299, "small_cnn": 64}
DEFAULT_LEARNING_RATE = {"inception_v3": 1e-4, "small_cnn": 1e-3}
INCEPTION_MIN_SIZE = 75  # smallest input keras.applications.InceptionV3 accepts


def build_classifier(num_classes: int, backbone: str = "small_cnn", weights: str = "none",
                     image_size: int = 64):
    """A classifier [B, S, S, 3] in [-1, 1] -> softmax [B, num_classes] with a layer named "features"."""
    if backbone not in BACKBONES:
        raise ValueError(f"--backbone={backbone!r}: use one of {', '.join(BACKBONES)}")
    if weights not in WEIGHTS:
        raise ValueError(f"--weights={weights!r}: use one of {', '.join(WEIGHTS)}")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    if backbone == "small_cnn":
        if weights != "none":
            raise ValueError("--backbone=small_cnn has no pretrained weights; use --weights=none")
        x = inputs
        for width in (32, 64, 128):
            x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    else:
        if image_size < INCEPTION_MIN_SIZE:
            raise ValueError(f"--image_size={image_size}: InceptionV3 needs at least {INCEPTION_MIN_SIZE} pixels")
        # InceptionV3 expects [-1, 1] (its preprocess_input), the project's image convention.
        base = keras.applications.InceptionV3(include_top=False, pooling="avg", input_shape=(image_size, image_size, 3),
                                              weights=None if weights == "none" else weights)
        features = keras.layers.Identity(name="features")(base(inputs))
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(features)
    return keras.Model(inputs, outputs, name=f"{backbone}_classifier")


def _split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return order[n_val:], order[:n_val]


def _check_output(out: str, val_fraction: float) -> None:
    if not out.endswith(".keras"):
        raise ValueError(f"--out={out!r}: the classifier is saved in Keras' format; give a path ending in .keras")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"--val_fraction={val_fraction}: must be in [0, 1)")


def fit_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int, out: str, backbone: str = "small_cnn",
                   weights: str = "none", epochs: int = 10, batch_size: int = 32, learning_rate: float | None = None,
                   val_fraction: float = 0.1, seed: int = 0, verbose: int = 2) -> dict:
    """Train `build_classifier` on images [N, S, S, 3] in [-1, 1] and their class ids [N], holding out a seeded
    `val_fraction`, and save it to `out` (.keras): the one training of the feature network, whether from this
    command or at the end of a run (`onegan_tf.report`).

    Returns path, train_images, val_images, val_accuracy (the last epoch's; None without validation images)
    and history (the keras History's per-epoch dict).
    """
    _check_output(out, val_fraction)
    learning_rate = learning_rate or DEFAULT_LEARNING_RATE.get(backbone, 1e-3)
    keras.utils.set_random_seed(seed)
    train_idx, val_idx = _split(len(labels), val_fraction, seed)
    train = labeled.dataset(images, labels, train_idx, batch_size, seed, training=True)
    val = labeled.dataset(images, labels, val_idx, batch_size, seed, training=False) if len(val_idx) else None
    model = build_classifier(num_classes, backbone, weights, images.shape[1])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # shuffle=False: the tf.data pipelines shuffle themselves.
    history = model.fit(train, validation_data=val, epochs=epochs, verbose=verbose, shuffle=False).history
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    model.save(out)
    return {"path": out, "train_images": int(len(train_idx)), "val_images": int(len(val_idx)),
            "val_accuracy": float(history["val_accuracy"][-1]) if "val_accuracy" in history else None,
            "history": history}


def train_classifier(data: str, out: str, backbone: str = "small_cnn", weights: str = "none",
                     image_size: int | None = None, epochs: int = 10, batch_size: int = 32,
                     learning_rate: float | None = None, val_fraction: float = 0.1, seed: int = 0,
                     num_images: int = 1200, label: str = "child", synthetic_parents: int = 4,
                     synthetic_children_per_parent: int = 3, verbose: int = 2) -> dict:
    """Load `data` (`onegan_tf.data.labeled`) and `fit_classifier` on it. Returns fit_classifier's dict."""
    _check_output(out, val_fraction)  # before the images are read
    image_size = image_size or DEFAULT_IMAGE_SIZE.get(backbone, 64)
    images, labels, classes = labeled.load(data, image_size, seed, num_images, label, synthetic_parents,
                                           synthetic_children_per_parent)
    return fit_classifier(images, labels, len(classes), out, backbone, weights, epochs, batch_size, learning_rate,
                          val_fraction, seed, verbose)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("data", None, "Image folder <root>/<class_name>/*.jpg|png, or 'synthetic'.", flag_values=fv)
    flags.DEFINE_string("out", None, "Where to save the classifier (.keras).", flag_values=fv)
    flags.DEFINE_enum("backbone", "inception_v3", BACKBONES, "inception_v3 (the paper's) or small_cnn (CPU, tests).",
                      flag_values=fv)
    flags.DEFINE_enum("weights", None, WEIGHTS, "Initial weights of the backbone (default imagenet for "
                      "inception_v3, none for small_cnn).", flag_values=fv)
    flags.DEFINE_integer("image_size", None, "Input side in pixels (default 299 for inception_v3, 64 for small_cnn).",
                         flag_values=fv)
    flags.DEFINE_integer("epochs", 10, "Training epochs.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 32, "Batch size.", flag_values=fv)
    flags.DEFINE_float("learning_rate", None, "Adam learning rate (default 1e-4 for inception_v3, 1e-3 for "
                       "small_cnn).", flag_values=fv)
    flags.DEFINE_float("val_fraction", 0.1, "Seeded fraction of images held out for validation accuracy.",
                       flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the split, the shuffle and the initial weights.", flag_values=fv)
    flags.DEFINE_integer("num_images", 1200, "--data=synthetic: number of images drawn.", flag_values=fv)
    flags.DEFINE_enum("label", "child", ["child", "parent"], "--data=synthetic: which class to learn.",
                      flag_values=fv)
    flags.DEFINE_integer("synthetic_parents", 4, "--data=synthetic: number of parent classes.", flag_values=fv)
    flags.DEFINE_integer("synthetic_children_per_parent", 3, "--data=synthetic: children per parent.",
                         flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    fv = cli.parse(argv, define_flags, required=("data", "out"),
                       usage="python -m onegan_tf.classifier --data=<folder|synthetic> --out=model.keras [...]")
    if fv is None:
        return 2
    weights = fv.weights or ("imagenet" if fv.backbone == "inception_v3" else "none")
    train_classifier(fv.data, fv.out, fv.backbone, weights, fv.image_size, fv.epochs, fv.batch_size,
                     fv.learning_rate, fv.val_fraction, fv.seed, fv.num_images, fv.label, fv.synthetic_parents,
                     fv.synthetic_children_per_parent)
    print(f"saved {fv.out}; use it with the evaluation's feature-network flag set to this path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
