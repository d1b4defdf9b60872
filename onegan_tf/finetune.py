"""Fine-tune OneGAN's style encoder E_c as a few-shot image classifier (Keras `model.fit`).

E_c (supplementary Tab. 5) learns, without labels, the child (fine) class of an image: its hidden features
`h_c` are a natural backbone for a classifier trained from a few labelled images per class.

    python -m onegan_tf.export --run_dir=RUN --keras_dir=nets
    python -m onegan_tf.finetune --encoder=nets/E_c.keras --data=synthetic --out=clf.keras \
        --shots_per_class=5 --epochs=20 [--freeze_backbone]
    python -m onegan_tf.finetune --encoder=nets/E_c.keras --data=/data/birds_by_class --out=clf.keras

`--data` is a folder `<root>/<class_name>/*.png|jpg` (classes are the sub-folders, sorted by name) or
`synthetic` (`onegan_tf.data.synthetic`, labelled by child class). Images are centre-cropped to a square and
resized to E_c's input size, as the serving export does with encoded images (`export.center_square_resize`).
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

import numpy as np
from absl import flags

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def build_classifier(encoder, num_classes: int, freeze_backbone: bool = False, dropout: float = 0.2):
    """[B, S, S, 3] in [-1, 1] -> E_c -> h_c -> softmax over `num_classes` (layer "predictions")."""
    import keras

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


def load_synthetic(num_images: int, size: int, seed: int, n_parents: int = 4, children_per_parent: int = 3,
                   resolution: int = 64):
    """(images float32 [N, size, size, 3] in [-1, 1], child labels, class names) from the synthetic set."""
    import tensorflow as tf

    from onegan_tf.data import synthetic
    from onegan_tf.export import center_square_resize

    spec = synthetic.SyntheticSpec(n_parents=n_parents, children_per_parent=children_per_parent,
                                   resolution=resolution, seed=seed)
    examples = synthetic.generate_many(spec, range(num_images))
    images = np.stack([center_square_resize(tf.constant(e["image"]), size).numpy() for e in examples])
    labels = np.array([e["child"] for e in examples], np.int32)
    return images, labels, [f"child_{c}" for c in range(spec.n_child)]


def load_folder(root: str, size: int):
    """(images, labels, class names) from `<root>/<class_name>/*`; unreadable files are named in the error."""
    import tensorflow as tf

    from onegan_tf.export import center_square_resize

    if not os.path.isdir(root):
        raise FileNotFoundError(f"--data={root!r}: not a folder (expected <root>/<class_name>/*.png|jpg, "
                                "or --data=synthetic)")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if len(classes) < 2:
        raise ValueError(f"--data={root!r}: found {len(classes)} class folder(s); a classifier needs at least 2 "
                         "sub-folders, one per class")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(f for f in os.listdir(os.path.join(root, name)) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise ValueError(f"--data={root!r}: class folder {name!r} holds no {'/'.join(IMAGE_EXTENSIONS)} image")
        for f in files:
            path = os.path.join(root, name, f)
            try:
                image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            except tf.errors.InvalidArgumentError as e:
                raise ValueError(f"{path} is not a readable image: {e.message.splitlines()[0]}") from None
            images.append(center_square_resize(image, size).numpy())
            labels.append(label)
    return np.stack(images), np.array(labels, np.int32), classes


def finetune(encoder_path: str, data: str, out: str, epochs: int = 10, shots_per_class: int = 0,
             val_per_class: int = 10, freeze_backbone: bool = False, batch_size: int = 32,
             learning_rate: float = 1e-3, dropout: float = 0.2, seed: int = 0, num_images: int = 600,
             synthetic_parents: int = 4, synthetic_children_per_parent: int = 3, synthetic_resolution: int = 64,
             verbose: int = 2):
    """Fine-tune E_c (from a `.keras` file) with a classification head on `data`; save to `out`. Returns History."""
    import keras
    import tensorflow as tf

    import onegan_tf.networks  # noqa: F401 - registers E_c's classes for load_model's safe mode

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
    if data == "synthetic":
        images, labels, classes = load_synthetic(num_images, size, seed, synthetic_parents,
                                                 synthetic_children_per_parent, synthetic_resolution)
    else:
        images, labels, classes = load_folder(data, size)
    train_idx, val_idx = few_shot_split(labels, shots_per_class, val_per_class, seed)

    def dataset(idx, training):
        ds = tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))
        if training:
            ds = ds.shuffle(len(idx), seed=seed).map(lambda x, y: (tf.image.random_flip_left_right(x, seed=seed), y))
        return ds.batch(batch_size).prefetch(2)

    model = build_classifier(encoder, len(classes), freeze_backbone, dropout)
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


def _define_flags(fv: flags.FlagValues) -> None:
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
    # A private FlagValues: --batch_size/--epochs must not collide with other tools' flags in one process.
    fv = flags.FlagValues()
    _define_flags(fv)
    argv = list(sys.argv if argv is None else argv)
    try:
        fv(argv)
        if fv.encoder is None or fv.data is None or fv.out is None:
            raise flags.Error("--encoder, --data and --out are required")
    except flags.Error as e:
        print(f"{e}\n\nusage: python -m onegan_tf.finetune --encoder=DIR/E_c.keras --data=<folder|synthetic> "
              f"--out=clf.keras [--shots_per_class=K] [--freeze_backbone] [...]\n{fv.get_help()}", file=sys.stderr)
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
