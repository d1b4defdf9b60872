"""Fine-tune OneGAN's style encoder E_c as a few-shot image classifier (Keras `model.fit`).

E_c (supplementary Tab. 5) learns, without labels, the child (fine) class of an image: its hidden features
`h_c` are a natural backbone for a classifier trained from a few labelled images per class.

    python -m onegan_tf.export --run_dir=RUN --keras_dir=nets
    python -m onegan_tf.finetune --encoder=nets/E_c.keras --data=synthetic --out=clf.keras \
        --shots_per_class=5 --epochs=20 [--freeze_backbone]
    python -m onegan_tf.finetune --encoder=nets/E_c.keras --data=/data/birds_by_class --out=clf.keras

`--data` is a folder `<root>/<class_name>/*.png|jpg` (classes are the sub-folders, sorted by name) or
`synthetic` (`onegan_tf.data.synthetic`, labelled by child class). Images are centre-cropped to a square and
resized to E_c's input size, as every user image is (`onegan_tf.data.labeled`, `data.images.prepare_image`).
`--shots_per_class=K` keeps K seeded training images per class (0 = all); the images left over (up to
`--val_per_class` per class) measure validation accuracy.

The classifier is `image -> E_c -> h_c -> Dropout -> Dense(softmax, name="predictions")`, saved as one
`.keras` file (weights, no optimiser state); load it with `keras.saving.load_model(path)` after
`import onegan_tf.networks`, and `compile()` it again to train further.
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


def build_encoder_classifier(encoder, num_classes: int, freeze_backbone: bool = False, dropout: float = 0.2):
    """[B, S, S, 3] in [-1, 1] -> E_c -> h_c -> softmax over `num_classes` (layer "predictions")."""
    encoder.trainable = not freeze_backbone
    # The heads on h_c (class logits, mu_c, sigma_c) are not on the classifier's path: nothing to train there.
    for head in (encoder.logits, encoder.mu, encoder.sigma):
        head.trainable = False
    size = encoder.image_size
    inputs = keras.Input((size, size, 3), name="image")
    h_c = encoder(inputs)["h_c"]
    x = keras.layers.Dropout(dropout, name="dropout")(h_c) if dropout else h_c
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="E_c_classifier")


def few_shot_split(labels: np.ndarray, shots_per_class: int, val_per_class: int, seed: int):
    """(train, val) indices: `shots_per_class` seeded images per class for training (0 = all but the
    validation ones), then up to `val_per_class` of the rest of each class for validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if shots_per_class:
            train.extend(idx[:shots_per_class])
            val.extend(idx[shots_per_class:shots_per_class + val_per_class])
        else:
            n_val = min(val_per_class, len(idx) - 1)
            val.extend(idx[:n_val])
            train.extend(idx[n_val:])
    return np.array(sorted(train), int), np.array(sorted(val), int)


def finetune(encoder_path: str, data: str, out: str, epochs: int = 10, shots_per_class: int = 0,
             val_per_class: int = 10, freeze_backbone: bool = False, batch_size: int = 32,
             learning_rate: float = 1e-3, dropout: float = 0.2, seed: int = 0, num_images: int = 600,
             synthetic_parents: int = 4, synthetic_children_per_parent: int = 3, synthetic_resolution: int = 64,
             verbose: int = 2):
    """Fine-tune E_c (from a `.keras` file) with a classification head on `data`; save to `out`. Returns History."""

    if not out.endswith(".keras"):
        raise ValueError(f"--out={out!r}: the classifier is saved in Keras' format; give a path ending in .keras")
    if not os.path.exists(encoder_path):
        raise FileNotFoundError(f"--encoder={encoder_path!r} does not exist; write it with python -m "
                                "onegan_tf.export --run_dir=RUN --keras_dir=DIR (then DIR/E_c.keras)")
    keras.utils.set_random_seed(seed)
    encoder = keras.saving.load_model(encoder_path)
    if type(encoder).__name__ != "StyleEncoder":
        raise ValueError(f"--encoder={encoder_path!r} holds a {type(encoder).__name__}; give the style encoder "
                         "E_c.keras (its h_c features are the backbone)")
    size = encoder.image_size
    images, labels, classes = labeled.load(data, size, seed, num_images, "child", synthetic_parents,
                                           synthetic_children_per_parent, synthetic_resolution)
    train_idx, val_idx = few_shot_split(labels, shots_per_class, val_per_class, seed)

    def dataset(idx, training):
        return labeled.dataset(images, labels, idx, batch_size, seed, training)

    model = build_encoder_classifier(encoder, len(classes), freeze_backbone, dropout)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # shuffle=False: the tf.data pipeline shuffles itself.
    history = model.fit(dataset(train_idx, True), validation_data=dataset(val_idx, False) if len(val_idx) else None,
                        epochs=epochs, verbose=verbose, shuffle=False)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    # Saved without the optimiser (an uncompiled view of the same layers): the file is for inference and
    # further fine-tuning, where a new compile() picks the optimiser.
    keras.Model(model.inputs, model.outputs, name=model.name).save(out)
    history.class_names = classes
    history.split = {"train": len(train_idx), "val": len(val_idx)}
    return history


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("encoder", None, "E_c.keras written by python -m onegan_tf.export --keras_dir.", flag_values=fv)
    flags.DEFINE_string("data", None, "Image folder <root>/<class_name>/*.png|jpg, or 'synthetic'.", flag_values=fv)
    flags.DEFINE_string("out", None, "Where to save the classifier (.keras).", flag_values=fv)
    flags.DEFINE_integer("epochs", 10, "Training epochs.", flag_values=fv)
    flags.DEFINE_integer("shots_per_class", 0, "Labelled training images per class (few-shot); 0 = all.",
                         flag_values=fv)
    flags.DEFINE_integer("val_per_class", 10, "Held-out images per class for validation accuracy.", flag_values=fv)
    flags.DEFINE_boolean("freeze_backbone", False, "Keep E_c's weights fixed: train the head only (linear probe).",
                         flag_values=fv)
    flags.DEFINE_integer("batch_size", 32, "Batch size.", flag_values=fv)
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", flag_values=fv)
    flags.DEFINE_float("dropout", 0.2, "Dropout on h_c before the head (0 = none).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the few-shot selection, the shuffle, the head's weights and, for "
                         "--data=synthetic, of the images.", flag_values=fv)
    flags.DEFINE_integer("num_images", 600, "--data=synthetic: images drawn (index i has child i % N_C).",
                         flag_values=fv)
    flags.DEFINE_integer("synthetic_parents", 4, "--data=synthetic: parent classes.", flag_values=fv)
    flags.DEFINE_integer("synthetic_children_per_parent", 3, "--data=synthetic: children per parent.", flag_values=fv)
    flags.DEFINE_integer("synthetic_resolution", 64, "--data=synthetic: side of the drawn images (then resized to "
                         "E_c's input size).", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    fv = cli.parse(argv, define_flags, required=("encoder", "data", "out"),
                       usage="python -m onegan_tf.finetune --encoder=DIR/E_c.keras --data=<folder|synthetic> "
                       "--out=clf.keras [--shots_per_class=K] [--freeze_backbone] [...]")
    if fv is None:
        return 2
    try:
        history = finetune(fv.encoder, fv.data, fv.out, fv.epochs, fv.shots_per_class, fv.val_per_class,
                           fv.freeze_backbone, fv.batch_size, fv.learning_rate, fv.dropout, fv.seed, fv.num_images,
                           fv.synthetic_parents, fv.synthetic_children_per_parent, fv.synthetic_resolution)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    h = history.history
    val = f", val accuracy {h['val_accuracy'][-1]:.3f}" if "val_accuracy" in h else ""
    print(f"saved {fv.out}: {len(history.class_names)} classes, {history.split['train']} training images, "
          f"loss {h['loss'][0]:.3f} -> {h['loss'][-1]:.3f}{val}; load with keras.saving.load_model after "
          "`import onegan_tf.networks`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
