"""tf.data pipelines the trainer and the evaluator read (SPEC §6, issue 3).

`train_streams` gives the two real domains of Eq. 10: X_c (object crops, random horizontal flip) and X_bg
(background patches, random horizontal flip — patches are textures, flipping them is a free augmentation
the paper neither asks for nor rules out). `eval_dataset` gives the evaluation crop (same crop, no flip)
with labels and masks. `describe` reports what a configuration yields.

Determinism and resumption: stream position `p` (the `p`-th image ever drawn; the batch of step `s` holds
positions `s·B … s·B + B − 1`) maps to epoch `p // N` and slot `p % N`; the image is
`index_shuffle(slot, seed=(seed, stream, epoch))` — a stateless permutation per epoch — and the flip is a
stateless coin of `(seed, stream, p)`. So a batch is a pure function of (config, seed, step), and
`start_step=k` begins at position `k·B` without decoding anything before it. Decoding, cropping and
resizing run in parallel (`num_parallel_calls=AUTOTUNE`, `deterministic=True`) and batches are prefetched.

Images are decoded with `tf.io.decode_image(channels=3)` (grayscale → RGB, CMYK JPEG → RGB), cropped, resized
with bilinear antialiasing, rounded to uint8 (so `data_cache` changes nothing but speed), then mapped to
float32 in [-1, 1]. Masks take the same crop (scaled if the mask file has another size than the image) and
flip, and come out as float32 in [0, 1].
"""

from __future__ import annotations

import collections
import zlib

import numpy as np
import tensorflow as tf

from onegan_tf.config import DataConfig
from onegan_tf.data.protocol import Protocol, build_protocol, object_crop
from onegan_tf.data.sources import DataError, Example, parent_of

AUTOTUNE = tf.data.AUTOTUNE
_STREAM_SALT = {"x_c": 1, "x_bg": 2}
_MAX_CACHE_BYTES = 1536 * 2**20  # an in-graph uint8 table must stay well below the 2 GB graph limit


def _seed_pair(seed: int, stream: str) -> int:
    return zlib.crc32(f"{seed}/{stream}".encode()) & 0x7FFFFFFF


class _Table:
    """Per-item tensors indexed by item number: file or bytes, crop box, and the mask if any."""

    def __init__(self, examples: list[Example], boxes: list[tuple[int, int, int, int]], with_mask: bool):
        self.n = len(examples)
        self.data = tf.constant([e.image if isinstance(e.image, bytes) else e.image.encode()
                                 for e in examples], tf.string)
        self.is_path = tf.constant([isinstance(e.image, str) for e in examples], tf.bool)
        self.image_hw = tf.constant([(e.height, e.width) for e in examples], tf.int32, shape=(self.n, 2))
        self.box = tf.constant(boxes, tf.int32, shape=(self.n, 4))
        self.with_mask = with_mask
        if with_mask:
            self.mask = tf.constant([e.mask if isinstance(e.mask, bytes) else e.mask.encode()
                                     for e in examples], tf.string)
            self.mask_is_path = tf.constant([isinstance(e.mask, str) for e in examples], tf.bool)


def _read(data, is_path):
    return tf.cond(is_path, lambda: tf.io.read_file(data), lambda: data)


def _crop_resize(image, box, size):
    """Crop (y0, x0, h, w) and resize to size×size with antialiasing; float32 in the input's range."""
    image = image[box[0]:box[0] + box[2], box[1]:box[1] + box[3]]
    return tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear", antialias=True)


def _load_image(table: _Table, i, size):
    image = tf.io.decode_image(_read(table.data[i], table.is_path[i]), channels=3, expand_animations=False)
    image = _crop_resize(image, table.box[i], size)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _load_mask(table: _Table, i, size):
    mask = tf.io.decode_image(_read(table.mask[i], table.mask_is_path[i]), channels=1, expand_animations=False)
    # A mask file may have another size than its image (e.g. user-supplied masks): scale the box.
    scale = tf.cast(tf.shape(mask)[:2], tf.float32) / tf.cast(table.image_hw[i], tf.float32)
    box = tf.cast(table.box[i], tf.float32) * tf.concat([scale, scale], 0)
    box = tf.maximum(tf.cast(tf.round(box), tf.int32), [0, 0, 1, 1])
    return _crop_resize(mask, box, size) / 255.0


def _to_unit_range(image_uint8):
    return tf.cast(image_uint8, tf.float32) / 127.5 - 1.0


def _flip(x, flip):
    return tf.cond(flip, lambda: tf.reverse(x, axis=[1]), lambda: x)


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def _require_nonempty(protocol: Protocol, what: str, n: int, cfg: DataConfig):
    if n == 0:
        src = protocol.source
        raise DataError(
            f"{what} is empty for --dataset={cfg.dataset} --data_dir={cfg.data_dir!r}: "
            f"{len(src.examples)} readable images ({len(src.corrupt)} unreadable) -> "
            f"{len(protocol.object)} object / {len(protocol.background_images)} background images, "
            f"{len(protocol.patches)} background patches ({len(protocol.no_patch)} images without a valid "
            f"patch). Provide more images or check the annotations.")


# ---------------------------------------------------------------------------------------------- training


def _cached_images(table: _Table, size: int) -> tf.Tensor:
    nbytes = table.n * size * size * 3
    if nbytes > _MAX_CACHE_BYTES:
        raise DataError(f"--data_cache would hold {nbytes / 2**30:.1f} GiB of {size}px crops; the limit is "
                        f"{_MAX_CACHE_BYTES / 2**30:.1f} GiB. Run without --data_cache.")
    ds = tf.data.Dataset.range(table.n).map(lambda i: _load_image(table, i, size), num_parallel_calls=AUTOTUNE,
                                            deterministic=True)
    return tf.constant(np.concatenate(list(ds.batch(256).as_numpy_iterator())))


def _stream(table: _Table, size: int, global_batch: int, seed: int, stream: str, start_step: int,
            cache: bool) -> tf.data.Dataset:
    n = table.n
    s = _seed_pair(seed, stream)
    cached = _cached_images(table, size) if cache else None

    def pick(position):
        epoch = position // n
        item = tf.random.experimental.index_shuffle(position % n, seed=tf.stack([s, epoch]),
                                                    max_index=n - 1)
        flip = tf.random.stateless_uniform([], seed=tf.stack([s + 1, position])) < 0.5
        return item, flip

    def load(item, flip):
        image = tf.gather(cached, item) if cached is not None else _load_image(table, item, size)
        return _to_unit_range(_flip(image, flip))

    ds = tf.data.Dataset.counter(start=start_step * global_batch, dtype=tf.int64)
    ds = ds.map(pick)
    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(global_batch, drop_remainder=True).prefetch(AUTOTUNE)
    return ds.with_options(_options())


def train_streams(data_cfg: DataConfig, image_size: int, global_batch: int, seed: int,
                  start_step: int = 0) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """(X_c, X_bg): infinite datasets of float32 [global_batch, H, W, 3] in [-1, 1] (Eq. 10's real domains).

    The batch at step s is a pure function of (data_cfg, image_size, global_batch, seed, s); `start_step`
    resumes the same stream without decoding the skipped part.
    """
    if global_batch < 1 or start_step < 0:
        raise ValueError(f"global_batch={global_batch} must be >= 1 and start_step={start_step} >= 0")
    protocol = build_protocol(data_cfg)
    _require_nonempty(protocol, "the object split X_c", len(protocol.object), data_cfg)
    _require_nonempty(protocol, "the background patch set X_bg", len(protocol.patches), data_cfg)
    objects = _Table(list(protocol.object), [object_crop(e, data_cfg.crop) for e in protocol.object], False)
    backgrounds = _Table([protocol.background_images[i] for i, _ in protocol.patches],
                         [box for _, box in protocol.patches], False)
    return (_stream(objects, image_size, global_batch, seed, "x_c", start_step, data_cfg.data_cache),
            _stream(backgrounds, image_size, global_batch, seed, "x_bg", start_step, data_cfg.data_cache))


# -------------------------------------------------------------------------------------------- evaluation


def eval_dataset(data_cfg: DataConfig, image_size: int, batch_size: int, split: str = "object",
                 classes: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Finite, key-ordered batches of {image [B,H,W,3] in [-1,1], child [B], parent [B] (int32, -1 where
    unknown), mask [B,H,W,1] in [0,1] (only when the source has masks)} — the object crop, no flip.

    split: "object" (the 80 %), "background_images" (the 20 %), "all", or "test" (synthetic's held-out set).
    classes: the model's (N_C, N_P); a child the source names no parent for then gets the contiguous-block
    parent c // (N_C // N_P) (SPEC §1) — how a CUB-format tree without a parent file is evaluated.
    The last batch may be smaller than batch_size.
    """
    protocol = build_protocol(data_cfg)
    examples = list(protocol.examples(split))
    _require_nonempty(protocol, f"split {split!r}", len(examples), data_cfg)
    with_mask = protocol.source.has_masks
    table = _Table(examples, [object_crop(e, data_cfg.crop) for e in examples], with_mask)
    child = tf.constant([e.child for e in examples], tf.int32)
    parent = tf.constant([parent_of(e.child, *classes) if e.parent < 0 and classes else e.parent
                          for e in examples], tf.int32)

    def load(i):
        out = {"image": _to_unit_range(_load_image(table, i, image_size)), "child": child[i],
               "parent": parent[i]}
        if with_mask:
            out["mask"] = _load_mask(table, i, image_size)
        return out

    ds = tf.data.Dataset.range(len(examples)).map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE).with_options(_options())


def train_pairs(data_cfg: DataConfig, image_size: int, batch_size: int, seed: int,
                split: str = "object") -> tf.data.Dataset:
    """Image and mask through the *training* augmentation (crop + seeded flip), for checking alignment."""
    protocol = build_protocol(data_cfg)
    examples = list(protocol.examples(split))
    _require_nonempty(protocol, f"split {split!r}", len(examples), data_cfg)
    if not protocol.source.has_masks:
        raise DataError(f"--dataset={data_cfg.dataset} has no masks")
    table = _Table(examples, [object_crop(e, data_cfg.crop) for e in examples], True)
    s = _seed_pair(seed, "pairs")

    def load(i):
        flip = tf.random.stateless_uniform([], seed=tf.stack([s, i])) < 0.5
        return {"image": _to_unit_range(_flip(_load_image(table, i, image_size), flip)),
                "mask": _flip(_load_mask(table, i, image_size), flip), "flip": flip}

    ds = tf.data.Dataset.range(len(examples)).map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).with_options(_options())


def describe(data_cfg: DataConfig) -> dict:
    """What the configuration yields: images per split, patches, skipped and unreadable files, classes."""
    protocol = build_protocol(data_cfg)
    src = protocol.source
    return {
        "dataset": src.name,
        "n_child": src.n_child,
        "n_parent": src.n_parent,
        "has_labels": src.has_labels,
        "has_masks": src.has_masks,
        "n_images": {"object": len(protocol.object), "background_images": len(protocol.background_images),
                     "all": len(src.examples),
                     "test": len(src.test_examples)},
        "n_background_patches": len(protocol.patches),
        "n_background_images_without_patch": len(protocol.no_patch),
        "background_images_without_patch": list(protocol.no_patch),
        "n_corrupt": len(src.corrupt),
        "corrupt_files": [name for name, _ in src.corrupt],
        "object_child_counts": dict(sorted(collections.Counter(e.child for e in protocol.object).items())),
    }
