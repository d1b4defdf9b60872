"""Labelled images for the classifier tools (`onegan_tf.classifier`, `onegan_tf.finetune`).

`load(data, size, ...)` reads `data`, a folder `<root>/<class_name>/*.png|jpg` (classes are the sub-folders,
sorted by name) or `synthetic` (`onegan_tf.data.synthetic`, labelled by child or parent class), into
(images float32 [N, size, size, 3] in [-1, 1], int32 labels [N], class names). Every image is prepared as
the project prepares user images (`onegan_tf.data.images.prepare_image`): the centred square crop, bilinear resize
with antialiasing, rounded to 8-bit values. Each tool splits the arrays its own way; `dataset` batches them.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from onegan_tf.data import synthetic
from onegan_tf.data.images import SkippedFile, load_image, prepare_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
LABELS = ("child", "parent")


def load_folder(root: str, size: int):
    """(images, labels, class names) from `<root>/<class_name>/*`; unreadable files are named in the error."""
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
            try:
                images.append(load_image(os.path.join(root, name, f), size))
            except SkippedFile as e:
                raise ValueError(f"--data={root!r}: {e}") from None
            labels.append(label)
    return np.stack(images), np.array(labels, np.int32), classes


def load_synthetic(num_images: int, size: int, seed: int, label: str = "child", n_parents: int = 4,
                   children_per_parent: int = 3, resolution: int | None = None):
    """(images, labels, class names) of the first `num_images` synthetic examples, drawn at `resolution`
    (default `size`) and labelled by `label` (child or parent class)."""
    if label not in LABELS:
        raise ValueError(f"--label={label!r}: use child or parent")
    spec = synthetic.SyntheticSpec(n_parents=n_parents, children_per_parent=children_per_parent,
                                   resolution=resolution or size, seed=seed)
    examples = synthetic.generate_many(spec, range(num_images))
    images = np.stack([prepare_image(Image.fromarray(e["image"]), size) for e in examples])
    labels = np.array([e[label] for e in examples], np.int32)
    n_classes = spec.n_child if label == "child" else spec.n_parents
    return images, labels, [f"{label}_{i}" for i in range(n_classes)]


def load(data: str, size: int, seed: int = 0, num_images: int = 600, label: str = "child", n_parents: int = 4,
         children_per_parent: int = 3, resolution: int | None = None):
    """`load_synthetic` when `data` is "synthetic" (the other arguments are its), else `load_folder(data, size)`."""
    if data == "synthetic":
        return load_synthetic(num_images, size, seed, label, n_parents, children_per_parent, resolution)
    return load_folder(data, size)


def dataset(images: np.ndarray, labels: np.ndarray, idx: np.ndarray, batch_size: int, seed: int,
            training: bool):
    """tf.data batches of images[idx], labels[idx]; training ones are shuffled and randomly flipped (seeded)."""
    ds = tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))
    if training:
        ds = ds.shuffle(len(idx), seed=seed).map(lambda x, y: (tf.image.random_flip_left_right(x, seed=seed), y))
    return ds.batch(batch_size).prefetch(2)
