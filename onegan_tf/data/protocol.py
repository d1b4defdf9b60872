"""The data protocol of paper Sec. 5 (docs/design.md §6): the seeded 80/20 split, the object crop and the
background patches — plain numpy geometry on the validated `Example`s, no TensorFlow.

- **Split.** The key-sorted examples are permuted by `split_seed`; the first 80 % (floor) are the object
  domain X_c, the rest feed the background domain X_bg. No image is in both.
- **Object crop** (`crop=bbox`, FineGAN's): a square of side 1.5 × max(box w, h) centred on the box, clipped
  to the image (so it can end up non-square at the border; it is then resized to H×W as FineGAN does).
  `crop=full` takes the whole image.
- **Background patches.** Two axis-aligned rectangles are disjoint iff one lies entirely left of, right
  of, above or below the other, so every box-free square sits in one of the four strips beside the box.
  The largest square of each strip is a candidate when its side is ≥ 1/4 of the shorter image side; the
  `background_patches_per_image` largest candidates are kept, each placed at a random position along its
  strip (seeded by `split_seed` and the image key, so patches do not depend on the other images).
  Images without a candidate are skipped, counted and logged.
- **Without boxes** (`background_dir`): X_bg is cut from a separate tree of object-free images instead —
  `background_patches_per_image` squares per image, each of random side in [1/4, 1] × the shorter image
  side at a random position (seeded like the strips) — and every image of the source is an object image.
  A source without boxes (a plain image folder) needs it, and takes `crop=full`.
- **Settings from the data** (`resolve_from_data`): `--mask_target=auto` becomes the object fraction
  estimated from the boxes of X_c (`object_fraction`; the masks are never read).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import zlib

import numpy as np
from absl import logging

from onegan_tf.config import AUTO, Config, DataConfig
from onegan_tf.data.sources import DataError, Example, Source, load_backgrounds, load_source

OBJECT_NUMERATOR, OBJECT_DENOMINATOR = 4, 5  # 80 % object images, 20 % background images
CROP_SCALE = 1.5  # FineGAN's object crop: 1.5 × max(box w, h)
MIN_PATCH_FRACTION = 0.25  # background patch side ≥ 1/4 of the shorter image side
# The part of its box an object covers, a prior for `object_fraction`: a rectangle fills all of its box, a
# disc pi/4, a triangle 1/2, a thin or turned shape less; half is the guess when only boxes are known.
BOX_FILL = 0.5

Box = tuple[int, int, int, int]  # (y0, x0, height, width) in pixels: TensorFlow's crop order


@dataclasses.dataclass(frozen=True)
class Protocol:
    """The examples of each split and the background patches, ready for the pipelines."""

    source: Source
    object: tuple[Example, ...]  # X_c images, key order
    background_images: tuple[Example, ...]  # the 20 %, key order
    patches: tuple[tuple[int, Box], ...]  # (index into background_images, square patch)
    no_patch: tuple[str, ...]  # keys of background images without a valid patch
    background_dir: str = ""  # where background_images come from when they are not part of the source

    def examples(self, split: str) -> tuple[Example, ...]:
        splits = {"object": self.object, "background_images": self.background_images,
                  "all": self.source.examples, "test": self.source.test_examples}
        if split not in splits:
            raise DataError(f"split={split!r} is not known; allowed values: {tuple(splits)}")
        if split == "background_images" and self.background_dir:
            raise DataError(f"split='background_images' are the 20 % of the source beside X_c; with "
                            f"--background_dir={self.background_dir} the background set is object-free images, "
                            f"not examples of --dataset={self.source.name}: use 'object' or 'all'")
        if split == "test" and not self.source.test_examples:
            raise DataError(f"split='test' needs a source with a held-out test split (synthetic); "
                            f"--dataset={self.source.name} has none: use 'object', 'background_images' "
                            f"or 'all'")
        return splits[split]


def split_object_background(examples: tuple[Example, ...], seed: int) -> tuple[tuple, tuple]:
    """Seeded 80/20 split of the examples (docs/design.md §6); both halves in key order."""
    examples = tuple(sorted(examples, key=lambda e: e.key))
    order = np.random.default_rng(seed).permutation(len(examples))
    n_object = len(examples) * OBJECT_NUMERATOR // OBJECT_DENOMINATOR
    is_object = np.zeros(len(examples), bool)
    is_object[order[:n_object]] = True
    return (tuple(e for e, o in zip(examples, is_object) if o),
            tuple(e for e, o in zip(examples, is_object) if not o))


def object_crop(example: Example, crop: str) -> Box:
    """The X_c crop (and evaluation crop) of one image: FineGAN's 1.5 × box square, or the full image."""
    height, width = example.height, example.width
    if crop == "full":
        return 0, 0, height, width
    x0, y0, x1, y1 = example.bbox
    r = max(1, int(max(x1 - x0, y1 - y0) * CROP_SCALE / 2))
    cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
    top, bottom = max(0, cy - r), min(height, cy + r)
    left, right = max(0, cx - r), min(width, cx + r)
    return top, left, max(1, bottom - top), max(1, right - left)


def object_fraction(protocol: Protocol, crop: str) -> float:
    """The fraction of an object crop covered by the object, estimated from the boxes alone
    (`--mask_target=auto`): BOX_FILL of each X_c image's box as a fraction of its crop's area, averaged over
    X_c. The crop is resized to H x W, which keeps area fractions. Boxes are what the protocol reads for the
    crops anyway; masks are never looked at."""
    if not protocol.object:
        raise DataError(f"dataset {protocol.source.name!r} has no object images to estimate the object "
                        "fraction from; give --mask_target a number in (0, 1)")
    if not protocol.source.has_boxes:
        raise DataError(f"--mask_target=auto estimates the object fraction from the object boxes, and dataset "
                        f"{protocol.source.name!r} has none; give --mask_target a number in (0, 1)")
    fractions = []
    for e in protocol.object:
        x0, y0, x1, y1 = e.bbox
        _, _, height, width = object_crop(e, crop)
        fractions.append(BOX_FILL * (x1 - x0) * (y1 - y0) / (height * width))
    return float(np.mean(fractions))


def resolve_from_data(cfg: Config) -> tuple[Config, list[str]]:
    """Settings given as `auto`, estimated from the data: the config with their values, and a line each.

    --mask_target=auto becomes auto:<estimate> (`object_fraction`), so config.json keeps both where the value
    came from and the value; resuming re-estimates it and compares as any other setting. Training and the
    bench both call it, so a flag file with `auto` times the model it trains.
    """
    if cfg.train.mask_target != AUTO:
        return cfg, []

    protocol = build_protocol(cfg.data)
    value = object_fraction(protocol, cfg.data.crop)
    train = dataclasses.replace(cfg.train, mask_target=f"{AUTO}:{value:.3f}")
    return dataclasses.replace(cfg, train=train), [
        f"mask_target=auto -> {value:.3f}: {BOX_FILL:g} of each of the {len(protocol.object)} object boxes "
        f"as a fraction of its crop (--crop={cfg.data.crop}), averaged"]


def background_patches(height: int, width: int, bbox: tuple[int, int, int, int], max_patches: int,
                       rng: np.random.Generator) -> list[Box]:
    """Square patches that do not intersect `bbox` (x0, y0, x1, y1, exclusive end), side ≥ 1/4 of the
    shorter image side: the largest square of each strip beside the box, largest first."""
    x0, y0, x1, y1 = bbox
    min_side = math.ceil(min(height, width) * MIN_PATCH_FRACTION)
    # (side, y range, x range) of the largest square in each strip; ranges are inclusive bounds of the
    # patch's top-left corner.
    strips = [
        (min(x0, height), (0, height), (0, x0)),  # left of the box
        (min(width - x1, height), (0, height), (x1, width)),  # right of the box
        (min(y0, width), (0, y0), (0, width)),  # above the box
        (min(height - y1, width), (y1, height), (0, width)),  # below the box
    ]
    candidates = sorted((s for s in strips if s[0] >= max(min_side, 1)), key=lambda s: -s[0])
    patches = []
    for side, (ya, yb), (xa, xb) in candidates[:max_patches]:
        top = int(rng.integers(ya, yb - side + 1))
        left = int(rng.integers(xa, xb - side + 1))
        patches.append((top, left, side, side))
    return patches


def random_patches(height: int, width: int, n: int, rng: np.random.Generator) -> list[Box]:
    """`n` squares of an object-free image: side uniform in [1/4, 1] × the shorter side, position uniform."""
    short = min(height, width)
    sides = rng.integers(max(1, math.ceil(short * MIN_PATCH_FRACTION)), short + 1, size=n)
    return [(int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1)), int(side),
             int(side)) for side in sides]


def patch_rng(split_seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([split_seed, zlib.crc32(key.encode())])


def build_protocol(cfg: DataConfig) -> Protocol:
    """Source → split → background patches, memoised per DataConfig."""
    return _build_protocol_cached(cfg)


@functools.lru_cache(maxsize=8)
def _build_protocol_cached(cfg: DataConfig) -> Protocol:
    source = load_source(cfg)
    if not source.has_boxes:
        if not cfg.background_dir:
            raise DataError(f"--dataset={cfg.dataset} --data_dir={cfg.data_dir} has no object boxes, so no "
                            f"background patches can be cut beside them: pass --background_dir=<folder of "
                            f"object-free images> (and --crop=full), see data/README.md")
        if cfg.crop != "full":
            raise DataError(f"--crop={cfg.crop} crops around the object box, and --dataset={cfg.dataset} "
                            f"--data_dir={cfg.data_dir} has none: use --crop=full")
    if cfg.background_dir:
        return _protocol_with_background_dir(cfg, source)
    object_examples, background_images = split_object_background(source.examples, cfg.split_seed)
    patches, no_patch = [], []
    for i, e in enumerate(background_images):
        found = background_patches(e.height, e.width, e.bbox, cfg.background_patches_per_image,
                                   patch_rng(cfg.split_seed, e.key))
        patches.extend((i, p) for p in found)
        if not found:
            no_patch.append(e.key)
    if no_patch:
        logging.info("X_bg: %d of %d background images have no box-free square patch of side >= 1/4 of "
                     "the shorter side and are skipped (e.g. %s)", len(no_patch), len(background_images),
                     ", ".join(no_patch[:5]))
    logging.info("data %s: %d object images, %d background images -> %d background patches, %d unreadable",
                 source.name, len(object_examples), len(background_images), len(patches), len(source.corrupt))
    return Protocol(source, object_examples, background_images, tuple(patches), tuple(no_patch))


def _protocol_with_background_dir(cfg: DataConfig, source: Source) -> Protocol:
    backgrounds, corrupt = load_backgrounds(cfg.background_dir)
    patches = [(i, p) for i, e in enumerate(backgrounds)
               for p in random_patches(e.height, e.width, cfg.background_patches_per_image,
                                       patch_rng(cfg.split_seed, e.key))]
    logging.info("data %s: %d object images (whole set), %d background images of %s -> %d background "
                 "patches; %d unreadable images, %d unreadable backgrounds", source.name, len(source.examples),
                 len(backgrounds), cfg.background_dir, len(patches), len(source.corrupt), len(corrupt))
    return Protocol(source, source.examples, backgrounds, tuple(patches), (), cfg.background_dir)
