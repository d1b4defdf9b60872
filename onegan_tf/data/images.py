"""Image files as the model sees them: any size and mode -> float32 [size, size, 3] in [-1, 1].

`prepare_image` is the one rule for user images (the task CLI, the classifier tools, the serving graph's
equal): RGB, the centred square crop, bilinear resize with antialiasing, rounded to 8-bit values.
`load_images` reads a folder or a list of files, skipping (and naming) the files that are not images.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps, UnidentifiedImageError


class SkippedFile(Exception):
    """An input that is not a readable image; the message says why."""


def prepare_image(image, size: int) -> np.ndarray:
    """A PIL image of any size and mode -> float32 [size, size, 3] in [-1, 1].

    Like the evaluation pipeline (docs/design.md §6) with no box known: RGB (grayscale, palette, CMYK and alpha
    converted), the centred square crop, bilinear resize with antialiasing, rounded to uint8, mapped to [-1, 1].
    """
    image = ImageOps.exif_transpose(image).convert("RGB")
    w, h = image.size
    side = min(w, h)
    x0, y0 = (w - side) // 2, (h - side) // 2
    square = np.asarray(image.crop((x0, y0, x0 + side, y0 + side)), np.float32)
    resized = tf.image.resize(square, [size, size], method="bilinear", antialias=True)
    return (np.clip(np.round(resized.numpy()), 0, 255) / 127.5 - 1.0).astype(np.float32)


def load_image(path: str, size: int) -> np.ndarray:
    """Read one image file (see `prepare_image`); raises SkippedFile when it is not a readable image."""
    try:
        with Image.open(path) as image:
            image.load()
            return prepare_image(image, size)
    except UnidentifiedImageError:
        raise SkippedFile(f"{path}: not an image file PIL can identify") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise SkippedFile(f"{path}: unreadable image ({type(e).__name__}: {e})") from None


def list_inputs(inputs) -> list[str]:
    """Files named by `inputs` (a folder, a file, or a list of either), in order and without repeats;
    folders are listed sorted, without hidden files and sub-folders."""
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    files = []
    for item in inputs:
        if os.path.isdir(item):
            files += [os.path.join(item, n) for n in sorted(os.listdir(item))
                      if not n.startswith(".") and os.path.isfile(os.path.join(item, n))]
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise FileNotFoundError(f"input {item!r} is neither a file nor a folder")
    return list(dict.fromkeys(os.path.normpath(f) for f in files))  # a file named twice is processed once


def load_images(inputs, size: int, log=None) -> tuple[np.ndarray, list[str], list[dict]]:
    """Read every image of `inputs` -> (images [N, size, size, 3] in [-1, 1], their paths, skipped files).

    Files that are not readable images are skipped with a message naming each; `skipped` lists them as
    {"path", "reason"}.
    """
    images, paths, skipped = [], [], []
    for path in list_inputs(inputs):
        try:
            images.append(load_image(path, size))
            paths.append(path)
        except SkippedFile as e:
            skipped.append({"path": path, "reason": str(e)})
            print(f"skipped {e}", file=log or sys.stderr)
    stack = np.stack(images) if images else np.zeros((0, size, size, 3), np.float32)
    return stack, paths, skipped


