"""The paper's figure grids as uint8 images (paper Fig. 3-6, supplementary Fig. 1-4).

A figure is a list of rows, each row a batch of images (N, H, W, C) with C = 3 (values in [-1, 1]) or C = 1
(masks in [0, 1]); `image_grid` lays them out with a thin separator. The named figures follow the captions:
- `generation_figure`: Fig. 3 — rows I, I_fg, I_m, I_bg; one column per sample.
- `reconstruction_figure`: Fig. 4 / suppl. Fig. 2 — rows real, I^, I^_fg, I^_bg, (ground-truth mask,) I^_m.
- `translation_figure`: Fig. 6 / suppl. Fig. 3 — one row per real image: the real image, then one column per
  target class (optionally under a header row showing each target class).
- `conditional_generation_figure`: suppl. Fig. 1 — top row real images, then one row per z; column j is
  generated from the classes encoded from real image j.
- `removal_figure`: suppl. Fig. 4 — rows original, (masked by the true mask,) masked by the predicted mask,
  OneGAN's background I^_bg.
Every grid is rows x H + (rows - 1) x PAD pixels high and cols x W + (cols - 1) x PAD wide.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from onegan_tf.files import atomic_write

PAD = 2
PAD_VALUE = 255


def to_uint8(batch) -> np.ndarray:
    """(N, H, W, 3) in [-1, 1] or (N, H, W, 1) in [0, 1] -> (N, H, W, 3) uint8."""
    x = np.asarray(batch, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"figure rows must be (N, H, W, 1 or 3); got shape {x.shape}")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    else:
        x = (x + 1.0) / 2.0
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def image_grid(rows, pad: int = PAD) -> np.ndarray:
    """Rows of equally sized images -> one (rows*H + gaps, cols*W + gaps, 3) uint8 image."""
    rows = [to_uint8(r) for r in rows]
    n_cols = max(r.shape[0] for r in rows)
    h, w = rows[0].shape[1:3]
    grid = np.full((len(rows) * (h + pad) - pad, n_cols * (w + pad) - pad, 3), PAD_VALUE, np.uint8)
    for i, row in enumerate(rows):
        if row.shape[1:3] != (h, w):
            raise ValueError(f"row {i} has images of size {row.shape[1:3]}, expected {(h, w)}")
        for j, img in enumerate(row):
            grid[i * (h + pad): i * (h + pad) + h, j * (w + pad): j * (w + pad) + w] = img
    return grid


def generation_figure(gen: dict) -> np.ndarray:
    """Fig. 3: from top to bottom the final image I, the foreground I_fg, the mask I_m, the background I_bg."""
    return image_grid([gen["I"], gen["I_fg"], gen["I_m"], gen["I_bg"]])


def reconstruction_figure(images, rec: dict, gt_mask=None) -> np.ndarray:
    """Fig. 4: real image, reconstruction, reconstructed foreground, background, (true mask,) predicted mask."""
    rows = [images, rec["I_hat"], rec["I_fg_hat"], rec["I_bg_hat"]]
    if gt_mask is not None:
        rows.append(gt_mask)
    rows.append(rec["I_m_hat"])
    return image_grid(rows)


def blank_like(batch) -> np.ndarray:
    """White images (value 1 in [-1, 1]) shaped like `batch`'s first image: an empty grid cell."""
    x = np.asarray(batch, dtype=np.float32)
    return np.ones((1,) + x.shape[1:], np.float32)


def translation_figure(images, translated, header=None) -> np.ndarray:
    """Fig. 6 / suppl. Fig. 3: row i = real image i, then its reconstruction with each target child class.

    translated: [T, N, H, W, 3], entry t the N images translated to target t. header: optional [T, H, W, 3],
    one image per target class (e.g. generated from it), drawn above its column; the corner stays blank.
    """
    images, translated = np.asarray(images, np.float32), np.asarray(translated, np.float32)
    if translated.ndim != 5 or translated.shape[1] != len(images):
        raise ValueError(f"translated must be [targets, {len(images)}, H, W, 3]; got shape {translated.shape}")
    rows = []
    if header is not None:
        rows.append(np.concatenate([blank_like(images), np.asarray(header, np.float32)]))
    for i in range(len(images)):
        rows.append(np.concatenate([images[i:i + 1], translated[:, i]]))
    return image_grid(rows)


def conditional_generation_figure(images, generated) -> np.ndarray:
    """Suppl. Fig. 1: top row real images; row k + 1 = generated[k], one z per row, column j from image j."""
    generated = np.asarray(generated, np.float32)
    if generated.ndim != 5 or generated.shape[1] != len(images):
        raise ValueError(f"generated must be [rows, {len(images)}, H, W, 3]; got shape {generated.shape}")
    return image_grid([images, *generated])


def masked(images, mask, fill: float = 1.0) -> np.ndarray:
    """Images with the pixels where mask > 0.5 painted `fill` (white): the inputs of suppl. Fig. 4 (ii-iii)."""
    images, mask = np.asarray(images, np.float32), np.asarray(mask, np.float32)
    if mask.ndim == 3:
        mask = mask[..., None]
    hole = (mask > 0.5).astype(np.float32)
    return images * (1.0 - hole) + fill * hole


def removal_figure(images, mask, background, gt_mask=None) -> np.ndarray:
    """Suppl. Fig. 4: original, (masked with the true mask,) masked with the predicted mask I^_m, OneGAN's
    reconstructed background I^_bg (the object removed in one forward pass)."""
    rows = [images]
    if gt_mask is not None:
        rows.append(masked(images, gt_mask))
    rows += [masked(images, mask), background]
    return image_grid(rows)


def save_png(path: str, image: np.ndarray) -> str:
    """Write a uint8 image atomically (`files.atomic_write`)."""
    return atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))
