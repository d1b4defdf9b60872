"""A built-in synthetic fine-grained dataset: the data of the CPU demo and of every test.

OneGAN learns, without labels, to segment the object, to cluster images into child (fine) and parent
(coarse) classes, to generate per class and to remove the object (paper Sec. 1, 5). This module draws a
procedural stand-in for CUB/Dogs/Cars with exact ground truth, deterministic per `(seed, index)`, no
download:

- **Parent = shape family** (`FAMILIES`: bird, star, car, fish, leaf, mushroom, crescent, tree). Each
  instance jitters the family's part sizes and warps the outline with a random smooth displacement field,
  so no two outlines are the same template; most families are non-convex.
- **Child = appearance within a parent**: a `PATTERNS` entry (solid with rim, stripes, spots, checker,
  two-tone split, gradient) times a two-colour `PALETTES` entry. Children of one parent differ in both
  pattern and palette; palettes are shared across parents, so colour alone does not identify a child.
  Child `c` belongs to parent `c // children_per_parent` (SPEC §1); index `i` has child `i % n_child`.
- **Pose**: random rotation, mirror, position (not centred) and scale, with mask area fraction in
  [0.15, 0.60]. Anti-aliased: the coverage is rendered at `SUPERSAMPLE`x and box-downsampled; the mask is
  that soft coverage >= 0.5, the image is `bg * (1 - cover) + fg * cover`.
- **Backgrounds** (`BACKGROUNDS`: gradient, noise, horizon, blotches) with colours drawn over the whole
  colour space; each parent prefers one background type with probability 0.6 (loose correlation, as
  birds and water). A background colour is the object's own with probability `SHARED_COLOUR_P` (so colour
  thresholds fail) and another palette's with probability `OTHER_PALETTE_P` (so a palette colour seen
  anywhere in the image does not give the child away).

Baselines that must NOT solve it (measured with `baselines`, i.e. `onegan_tf.baselines`: a centred disc with
the mean object area, the border-colour distance at its best threshold, k-means++ on 16x16 pixels, best of 4):

    python -m onegan_tf.data.synthetic --baselines --n 600                    # 4 x 3 classes, 128 px
    python -m onegan_tf.data.synthetic --baselines --n 600 --seed 1
    python -m onegan_tf.data.synthetic --baselines --n 600 --n_parents 8 --resolution 64   # 8 x 3, 64 px

    baseline                                       seed 0         seed 1         8x3 @ 64 px
    IoU, all-foreground mask                       0.276          0.276          0.275
    IoU, centred disc with the mean area           0.455          0.460          0.433
    IoU, border-colour distance, best threshold    0.539          0.532          0.555
    k-means, 16x16 pixels, k = N_C: NMI / ACC      0.270 / 0.277  0.281 / 0.283  0.297 / 0.210
    k-means, 16x16 pixels, k = N_P: NMI / ACC      0.019 / 0.302  0.024 / 0.310  0.061 / 0.198

(ACC is Hungarian-matched; chance ACC is ~1/N_P = 0.25 for parents.) A method that learned anything should
beat these by a wide margin. Note that FineGAN's crop (SPEC §6, 1.5 x the box) enlarges the object, so
the all-foreground IoU on cropped images is higher than above. Speed: ~12 ms per 128 px image on one core.

`python -m onegan_tf.data.synthetic --write DIR --n N` writes the set in the folder format of the data
pipeline (`write_dataset`); `--write_plain DIR` the images alone and `--write_backgrounds DIR` the
backgrounds alone (`write_images`), the box-free route of data/README.md.
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import json
import os
import sys
from typing import Callable, Iterable, Sequence

import numpy as np

FAMILIES = ("bird", "star", "car", "fish", "leaf", "mushroom", "crescent", "tree")
PATTERNS = ("solid", "stripes", "spots", "checker", "split", "gradient")
BACKGROUNDS = ("gradient", "noise", "horizon", "blotches")
MAX_CHILDREN_PER_PARENT = 12

_COLOURS = {
    "red": (0.85, 0.12, 0.10), "orange": (0.98, 0.55, 0.05), "yellow": (0.98, 0.90, 0.15),
    "lime": (0.55, 0.90, 0.20), "green": (0.08, 0.50, 0.18), "cyan": (0.15, 0.85, 0.90),
    "blue": (0.12, 0.30, 0.90), "navy": (0.06, 0.08, 0.38), "purple": (0.50, 0.15, 0.70),
    "pink": (0.98, 0.55, 0.75), "brown": (0.45, 0.25, 0.08), "white": (0.96, 0.96, 0.94),
    "black": (0.07, 0.07, 0.08), "grey": (0.55, 0.55, 0.58),
}
# Two-colour palettes with a clear contrast inside each pair; child (p, j) uses palette (p + j) mod 12,
# so a palette recurs in several parents and only shape + pattern + palette together name the child.
PALETTES = (
    ("red", "yellow"), ("blue", "white"), ("green", "black"), ("purple", "orange"),
    ("cyan", "navy"), ("pink", "brown"), ("yellow", "black"), ("white", "red"),
    ("orange", "blue"), ("lime", "purple"), ("grey", "pink"), ("brown", "cyan"),
)

SUPERSAMPLE = 4
AREA_RANGE = (0.15, 0.60)
SHARED_COLOUR_P = 0.45
OTHER_PALETTE_P = 0.4
PREFERRED_BACKGROUND_P = 0.6


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Which synthetic set: class counts, image side and the seed of every random draw; the shape family of
    each parent, the range of the object's area fraction and the background kinds drawn from (the defaults
    give the demo's set; other values give a set with other shapes, sizes and backgrounds)."""

    n_parents: int = 4
    children_per_parent: int = 3
    resolution: int = 128
    seed: int = 0
    families: tuple[str, ...] = FAMILIES
    area_range: tuple[float, float] = AREA_RANGE
    backgrounds: tuple[str, ...] = BACKGROUNDS

    def __post_init__(self):
        object.__setattr__(self, "families", tuple(self.families))
        object.__setattr__(self, "area_range", tuple(float(a) for a in self.area_range))
        object.__setattr__(self, "backgrounds", tuple(self.backgrounds))
        unknown = [f for f in self.families if f not in FAMILIES] + [b for b in self.backgrounds if b not in BACKGROUNDS]
        if unknown or len(set(self.families)) != len(self.families) or not self.backgrounds:
            raise ValueError(f"SyntheticSpec: families must be distinct names from {FAMILIES} and backgrounds a "
                             f"non-empty list from {BACKGROUNDS}; got {self.families}, {self.backgrounds}.")
        lo, hi = self.area_range
        if not (0.05 <= lo and lo + 0.1 <= hi <= 0.8):
            raise ValueError(f"SyntheticSpec.area_range={self.area_range}: need 0.05 <= low, low + 0.1 <= high "
                             f"<= 0.8 (area fractions of the image).")
        if not 1 <= self.n_parents <= len(self.families):
            raise ValueError(f"SyntheticSpec.n_parents={self.n_parents}: must be in [1, {len(self.families)}] "
                             f"(one shape family per parent: {', '.join(self.families)}).")
        if not 1 <= self.children_per_parent <= MAX_CHILDREN_PER_PARENT:
            raise ValueError(f"SyntheticSpec.children_per_parent={self.children_per_parent}: must be in "
                             f"[1, {MAX_CHILDREN_PER_PARENT}].")
        if self.resolution < 16:
            raise ValueError(f"SyntheticSpec.resolution={self.resolution}: must be >= 16 pixels.")

    @property
    def n_child(self) -> int:
        return self.n_parents * self.children_per_parent

    def child_appearance(self, child: int) -> tuple[str, str, tuple[str, str]]:
        """(family, pattern, palette) that define `child`; fixed, independent of the seed."""
        parent, j = divmod(child, self.children_per_parent)
        pattern = PATTERNS[(j + 2 * parent) % len(PATTERNS)]
        palette = PALETTES[(j + parent) % len(PALETTES)]
        return self.families[parent], pattern, palette


# ----------------------------------------------------------------------------------------------------
# Shape families, in object-local coordinates (u to the object's front, v up, extent about [-1, 1]).
# Each takes (u, v, rng) and returns a boolean "inside" array; rng draws the per-instance part sizes.


def _ellipse(u, v, cx, cy, rx, ry, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    du, dv = u - cx, v - cy
    a = (c * du + s * dv) / rx
    b = (-s * du + c * dv) / ry
    return a * a + b * b <= 1.0


def _triangle(u, v, p0, p1, p2):
    def side(a, b):
        return (b[0] - a[0]) * (v - a[1]) - (b[1] - a[1]) * (u - a[0])
    d0, d1, d2 = side(p0, p1), side(p1, p2), side(p2, p0)
    neg = (d0 < 0) | (d1 < 0) | (d2 < 0)
    pos = (d0 > 0) | (d1 > 0) | (d2 > 0)
    return ~(neg & pos)


def _round_box(u, v, cx, cy, hw, hh, r):
    qx = np.abs(u - cx) - (hw - r)
    qy = np.abs(v - cy) - (hh - r)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) <= r


def _bird(u, v, rng):
    j = rng.uniform(0.88, 1.12, size=6)
    body = _ellipse(u, v, -0.05, 0.0, 0.62 * j[0], 0.36 * j[1], angle=rng.uniform(-0.25, 0.1))
    hy = 0.32 * j[2]
    head = _ellipse(u, v, 0.55, hy, 0.24 * j[3], 0.22 * j[3])
    beak = _triangle(u, v, (0.7, hy + 0.08), (0.7, hy - 0.06), (1.0 * j[4], hy - 0.02))
    tail_y = rng.uniform(-0.1, 0.25)
    tail = _triangle(u, v, (-0.45, 0.12), (-0.45, -0.12), (-1.0, tail_y + 0.28 * j[5]))
    tail |= _triangle(u, v, (-0.45, 0.12), (-0.45, -0.12), (-0.98, tail_y - 0.05))
    legs = (np.abs(u - 0.02) < 0.035) & (v < -0.2) & (v > -0.62)
    legs |= (np.abs(u + 0.14) < 0.035) & (v < -0.2) & (v > -0.6)
    return body | head | beak | tail | legs


def _star(u, v, rng):
    k = int(rng.choice([5, 6]))
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    r = 0.62 * (1 + rng.uniform(0.3, 0.45) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)))
    for h in (2, 3):
        r = r + rng.uniform(0.0, 0.05) * np.cos(h * theta + rng.uniform(0, 2 * np.pi))
    return rho <= r


def _car(u, v, rng):
    j = rng.uniform(0.88, 1.12, size=5)
    body = _round_box(u, v, 0.0, -0.05, 0.95 * j[0], 0.24 * j[1], 0.12)
    cab_x = rng.uniform(-0.2, 0.1)
    cabin = _round_box(u, v, cab_x, 0.25, 0.48 * j[2], 0.22 * j[3], 0.15)
    cabin |= _triangle(u, v, (cab_x + 0.42 * j[2], 0.45), (cab_x + 0.42 * j[2], 0.1), (cab_x + 0.75, 0.1))
    wr = 0.2 * j[4]
    wheels = _ellipse(u, v, -0.58, -0.3, wr, wr) | _ellipse(u, v, 0.58, -0.3, wr, wr)
    return body | cabin | wheels


def _fish(u, v, rng):
    j = rng.uniform(0.88, 1.12, size=5)
    body = _ellipse(u, v, 0.15, 0.0, 0.65 * j[0], 0.36 * j[1])
    tail = _triangle(u, v, (-0.38, 0.0), (-0.98, 0.42 * j[2]), (-0.98, -0.42 * j[2]))
    notch = _triangle(u, v, (-1.0, 0.2 * j[3]), (-1.0, -0.2 * j[3]), (-0.72, 0.0))
    dorsal = _triangle(u, v, (-0.15, 0.25), (0.35, 0.28), (-0.05 * j[4], 0.62))
    ventral = _triangle(u, v, (0.0, -0.25), (0.3, -0.25), (0.05, -0.5))
    return (body | (tail & ~notch) | dorsal | ventral)


def _leaf(u, v, rng):
    length = rng.uniform(0.82, 0.95)
    width = rng.uniform(0.38, 0.5)
    t = np.clip(u / length, -1, 1)
    serr = 1 + rng.uniform(0.06, 0.14) * np.sin(rng.uniform(14, 20) * u + rng.uniform(0, 6))
    half = width * np.power(np.clip(1 - t * t, 0, 1), 0.7) * (1 + 0.25 * t) * serr
    blade = (np.abs(u) < length) & (np.abs(v - 0.08 * t * t) < half)
    stem = (u < -length + 0.05) & (u > -1.05) & (np.abs(v + 0.04 * (u + length)) < 0.04)
    return blade | stem


def _mushroom(u, v, rng):
    j = rng.uniform(0.88, 1.12, size=4)
    cap = _ellipse(u, v, 0.0, 0.05, 0.85 * j[0], 0.6 * j[1]) & (v > 0.05 - 0.08 * np.cos(3 * u))
    sw = 0.17 * j[2]
    stem = (np.abs(u) < sw + 0.08 * (-v - 0.0) * j[3]) & (v < 0.15) & (v > -0.72)
    base = _ellipse(u, v, 0.0, -0.72, sw + 0.1, 0.12)
    return cap | stem | base


def _crescent(u, v, rng):
    r = rng.uniform(0.78, 0.9)
    outer = _ellipse(u, v, 0.0, 0.0, r, r)
    off = rng.uniform(0.3, 0.45)
    inner = _ellipse(u, v, off, rng.uniform(-0.1, 0.1), r * rng.uniform(0.7, 0.82), r * 0.8)
    dot = _ellipse(u, v, off + 0.1, 0.0, 0.16, 0.16)
    return (outer & ~inner) | dot


def _tree(u, v, rng):
    # Lying tree (u = up the trunk) so its long axis matches the others'.
    j = rng.uniform(0.88, 1.12, size=4)
    layers = np.zeros(u.shape, bool)
    for k, (base_u, half) in enumerate(((-0.35, 0.62), (0.05, 0.5), (0.4, 0.36))):
        half = half * j[k]
        layers |= _triangle(u, v, (base_u, half), (base_u, -half), (base_u + 0.55, 0.0))
    trunk = (u > -0.95) & (u < -0.3) & (np.abs(v) < 0.12 * j[3])
    return layers | trunk


_SHAPES: dict[str, Callable] = {
    "bird": _bird, "star": _star, "car": _car, "fish": _fish, "leaf": _leaf,
    "mushroom": _mushroom, "crescent": _crescent, "tree": _tree,
}


# ----------------------------------------------------------------------------------------------------
# Sampling one instance: every random draw happens here, in a fixed order, so rendering is a pure function.


def _rng(spec: SyntheticSpec, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(spec.seed), int(index), 0x0_6A7]))


def _jitter_colour(rgb, rng, hue=0.03, sat=0.12, val=0.12):
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    h = (h + rng.uniform(-hue, hue)) % 1.0
    s = float(np.clip(s * (1 + rng.uniform(-sat, sat)), 0, 1))
    v = float(np.clip(v * (1 + rng.uniform(-val, val)), 0, 1))
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32)


def _random_colour(rng):
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 1.0) ** 0.5,
                                        rng.uniform(0.1, 1.0)), np.float32)


@dataclasses.dataclass
class _Instance:
    child: int
    parent: int
    family: str
    pattern: str
    colours: tuple[np.ndarray, np.ndarray]
    shape_seed: int
    pattern_seed: int
    warp: np.ndarray             # (2, 3, 3): two displacement sinusoids per axis (amp, freq, phase)
    angle: float
    mirror: bool
    aspect: float
    area: float
    pos: tuple[float, float]     # where in the feasible range the object is placed, each in [0, 1]
    background: str
    bg_colours: list[np.ndarray]
    bg_seed: int


def _sample(spec: SyntheticSpec, index: int) -> _Instance:
    rng = _rng(spec, index)
    child = index % spec.n_child
    parent = child // spec.children_per_parent
    family, pattern, palette = spec.child_appearance(child)
    colours = (_jitter_colour(_COLOURS[palette[0]], rng), _jitter_colour(_COLOURS[palette[1]], rng))
    warp = np.stack([rng.uniform(0.02, 0.07, (2, 2)), rng.uniform(1.5, 4.5, (2, 2)),
                     rng.uniform(0, 2 * np.pi, (2, 2))], axis=-1)
    if rng.uniform() < PREFERRED_BACKGROUND_P:
        background = spec.backgrounds[parent % len(spec.backgrounds)]
    else:
        background = spec.backgrounds[rng.integers(len(spec.backgrounds))]
    bg_colours = [_random_colour(rng) for _ in range(4)]
    # Object-like colours in the background: the object's own (defeats colour thresholds) or another
    # palette's (so that a palette colour in the image does not give the child away).
    share = rng.uniform()
    if share < SHARED_COLOUR_P:
        bg_colours[rng.integers(2)] = _jitter_colour(colours[rng.integers(2)], rng, 0.04, 0.2, 0.2)
    elif share < SHARED_COLOUR_P + OTHER_PALETTE_P:
        other = list(_COLOURS.values())[rng.integers(len(_COLOURS))]
        bg_colours[rng.integers(2)] = _jitter_colour(other, rng, 0.04, 0.2, 0.2)
    return _Instance(
        child=child, parent=parent, family=family, pattern=pattern, colours=colours,
        shape_seed=int(rng.integers(2**31)), pattern_seed=int(rng.integers(2**31)), warp=warp,
        angle=float(rng.uniform(0, 2 * np.pi)), mirror=bool(rng.uniform() < 0.5),
        aspect=float(np.exp(rng.normal(0, 0.1))),
        area=float(np.exp(rng.uniform(np.log(spec.area_range[0] + 0.02), np.log(spec.area_range[1] - 0.04)))),
        pos=(float(rng.uniform()), float(rng.uniform())),
        background=background, bg_colours=bg_colours, bg_seed=int(rng.integers(2**31)))


# ----------------------------------------------------------------------------------------------------
# Rendering.


def _warped_shape(inst: _Instance, u, v):
    """Inside-test of the instance's outline at local coordinates (u, v): warp, then the family's test."""
    u = u * inst.aspect
    v = v / inst.aspect
    if inst.mirror:
        v = -v
    (au, av) = inst.warp
    du = sum(a * np.sin(f * v + p) for a, f, p in au)
    dv = sum(a * np.sin(f * u + p) for a, f, p in av)
    return _SHAPES[inst.family](u + du, v + dv, np.random.default_rng(inst.shape_seed))


def _local_coords(inst: _Instance, xs, ys, cx, cy, scale):
    """Image pixel coordinates -> object-local (u, v); y points down in the image, v up."""
    c, s = np.cos(inst.angle), np.sin(inst.angle)
    dx, dy = (xs - cx) / scale, (cy - ys) / scale
    return c * dx + s * dy, -s * dx + c * dy


def _layout(inst: _Instance, res: int):
    """Centre (cx, cy) and scale (pixels per local unit) giving the sampled area, fully inside the image."""
    g = np.linspace(-1.6, 1.6, 97, dtype=np.float32)
    step = float(g[1] - g[0])
    uu, vv = np.meshgrid(g, g)
    inside = _warped_shape(inst, uu, vv)
    local_area = inside.sum() * step * step
    c, s = np.cos(inst.angle), np.sin(inst.angle)
    pu, pv = uu[inside], vv[inside]
    # Local -> image offsets (inverse of _local_coords), in local units; pad by one grid step.
    px = c * pu - s * pv
    py = -(s * pu + c * pv)
    x0, x1 = px.min() - step, px.max() + step
    y0, y1 = py.min() - step, py.max() + step
    scale = np.sqrt(inst.area * res * res / local_area)
    margin = 1.0
    scale = min(scale, (res - 2 * margin) / (x1 - x0), (res - 2 * margin) / (y1 - y0))
    lo_x, hi_x = margin - x0 * scale, res - margin - x1 * scale
    lo_y, hi_y = margin - y0 * scale, res - margin - y1 * scale
    cx = lo_x + inst.pos[0] * max(hi_x - lo_x, 0)
    cy = lo_y + inst.pos[1] * max(hi_y - lo_y, 0)
    return cx, cy, scale


def _coverage(inst: _Instance, res: int, layout) -> np.ndarray:
    """Soft coverage in [0, 1] at res x res: the inside-test averaged over SUPERSAMPLE^2 points per pixel.

    Pixels whose four corners and centre agree are taken as uniform; only the others (the outline) are
    supersampled, which is ~5x cheaper than supersampling the whole image and differs from it only for
    details thinner than a pixel.
    """
    ss = SUPERSAMPLE
    corners = np.arange(res + 1, dtype=np.float32)
    cx_, cy_ = np.meshgrid(corners, corners)
    ins_c = _warped_shape(inst, *_local_coords(inst, cx_, cy_, *layout))
    centres = corners[:-1] + 0.5
    mx, my = np.meshgrid(centres, centres)
    ins_m = _warped_shape(inst, *_local_coords(inst, mx, my, *layout))
    votes = (ins_c[:-1, :-1].astype(np.int8) + ins_c[1:, :-1] + ins_c[:-1, 1:] + ins_c[1:, 1:] + ins_m)
    cover = (votes == 5).astype(np.float32)
    ys, xs = np.nonzero((votes > 0) & (votes < 5))
    if len(ys):
        off = (np.arange(ss, dtype=np.float32) + 0.5) / ss
        ox, oy = np.meshgrid(off, off)
        sx = xs[:, None] + ox.reshape(1, -1)
        sy = ys[:, None] + oy.reshape(1, -1)
        inside = _warped_shape(inst, *_local_coords(inst, sx, sy, *layout))
        cover[ys, xs] = inside.mean(axis=1)
    return cover


def _smooth_noise(rng, res, cells, channels=1):
    """Bilinearly upsampled uniform noise on a cells x cells grid: a smooth field in [0, 1]."""
    grid = rng.uniform(size=(channels, cells + 1, cells + 1)).astype(np.float32)
    t = np.linspace(0, cells, res, dtype=np.float32)
    i0 = np.minimum(t.astype(int), cells - 1)
    w = t - i0
    m = np.zeros((res, cells + 1), np.float32)
    m[np.arange(res), i0] = 1 - w
    m[np.arange(res), i0 + 1] = w
    out = np.stack([m @ g @ m.T for g in grid])
    return out[0] if channels == 1 else out


def _foreground(inst: _Instance, res: int, layout, mask: np.ndarray) -> np.ndarray:
    """Object colour at every pixel centre (only meaningful where coverage > 0), (res, res, 3) in [0, 1]."""
    rng = np.random.default_rng(inst.pattern_seed)
    t = np.arange(res, dtype=np.float32) + 0.5
    xs, ys = np.meshgrid(t, t)
    u, v = _local_coords(inst, xs, ys, *layout)
    if inst.mirror:
        v = -v
    a, b = inst.colours
    p = inst.pattern
    if p == "solid":
        # Colour B only on a rim a few pixels wide: the mask minus its erosion.
        from scipy import ndimage
        rim_px = max(1, int(round(res / 40)))
        w = (~ndimage.binary_erosion(mask, iterations=rim_px)).astype(np.float32)
    elif p == "stripes":
        ang = rng.uniform(-0.4, 0.4) + np.pi / 2 * rng.integers(2)
        f = rng.uniform(7, 10)
        w = (np.sin(f * (np.cos(ang) * u + np.sin(ang) * v) + rng.uniform(0, 6.3)) > 0).astype(np.float32)
    elif p == "spots":
        n = int(rng.integers(8, 14))
        centres = rng.uniform(-0.9, 0.9, size=(n, 2))
        radii = rng.uniform(0.09, 0.15, size=n)
        w = np.zeros(u.shape, np.float32)
        for (cu, cv), r in zip(centres, radii):
            w = np.maximum(w, ((u - cu) ** 2 + (v - cv) ** 2 <= r * r).astype(np.float32))
    elif p == "checker":
        cell = rng.uniform(0.28, 0.36)
        ou, ov = rng.uniform(0, cell, 2)
        w = ((np.floor((u + ou) / cell) + np.floor((v + ov) / cell)) % 2).astype(np.float32)
    elif p == "split":
        w = (v > rng.uniform(-0.1, 0.1)).astype(np.float32)
    else:  # gradient
        w = np.clip((u + 0.8) / 1.6, 0, 1)
    fg = a[None, None] * (1 - w[..., None]) + b[None, None] * w[..., None]
    # Soft light from one side and a little grain, so the object reads as an object, not a flat cut-out.
    light = rng.uniform(0, 2 * np.pi)
    shade = 1 + 0.15 * np.clip(np.cos(light) * u + np.sin(light) * v, -1.2, 1.2)
    grain = rng.normal(0, 0.02, size=fg.shape).astype(np.float32)
    return np.clip(fg * shade[..., None] + grain, 0, 1)


def _background(inst: _Instance, res: int) -> np.ndarray:
    rng = np.random.default_rng(inst.bg_seed)
    c = inst.bg_colours
    t = (np.arange(res, dtype=np.float32) + 0.5) / res
    xs, ys = np.meshgrid(t, t)
    kind = inst.background
    if kind == "gradient":
        ang = rng.uniform(0, 2 * np.pi)
        w = np.clip((np.cos(ang) * (xs - 0.5) + np.sin(ang) * (ys - 0.5)) * rng.uniform(1.0, 2.0) + 0.5, 0, 1)
        bg = c[0] * (1 - w[..., None]) + c[1] * w[..., None]
        bg = bg + 0.15 * (_smooth_noise(rng, res, 6)[..., None] - 0.5)
    elif kind == "noise":
        # Contrast-stretched smooth noise: camouflage-like regions of three distinct colours.
        n = _smooth_noise(rng, res, int(rng.integers(2, 7)), channels=2)
        w = np.clip((n - 0.5) * rng.uniform(2.0, 4.0) + 0.5, 0, 1)[..., None]
        bg = (c[0] * (1 - w[0]) + c[1] * w[0]) * (1 - 0.7 * w[1]) + c[2] * 0.7 * w[1]
        bg = bg + 0.15 * (_smooth_noise(rng, res, res // 4)[..., None] - 0.5)
    elif kind == "horizon":
        h = rng.uniform(0.25, 0.75)
        line = h + rng.uniform(0.02, 0.1) * np.sin(rng.uniform(3, 12) * xs + rng.uniform(0, 6.3)) \
            + rng.uniform(-0.2, 0.2) * (xs - 0.5)
        below = (ys > line).astype(np.float32)[..., None]
        sky = c[0] * (1 - ys[..., None]) + c[2] * ys[..., None] * 0.5 + c[0] * ys[..., None] * 0.5
        ground = c[1] * (0.75 + 0.5 * _smooth_noise(rng, res, res // 8)[..., None])
        bg = sky * (1 - below) + ground * below
    else:  # blotches
        bg = np.broadcast_to(c[0], (res, res, 3)).copy()
        for _ in range(int(rng.integers(5, 12))):
            col = c[1 + rng.integers(3)] if rng.uniform() < 0.7 else _random_colour(rng)
            bx, by = rng.uniform(0, 1, 2)
            sx, sy = rng.uniform(0.05, 0.25, 2)
            g = np.exp(-(((xs - bx) / sx) ** 2 + ((ys - by) / sy) ** 2) ** rng.uniform(1, 3))
            bg = bg * (1 - g[..., None]) + col * g[..., None]
    grain = rng.normal(0, 0.035, size=(res, res, 3)).astype(np.float32)
    return np.clip(bg + grain, 0, 1).astype(np.float32)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def render_background(spec: SyntheticSpec, index: int) -> np.ndarray:
    """The background of example `index` alone, (H, W, 3) uint8: `generate`'s image equals it wherever
    the object's soft coverage is 0 (used by the tests and handy as a perfect 'object removal')."""
    return _to_uint8(_background(_sample(spec, index), spec.resolution))


def generate(spec: SyntheticSpec, index: int) -> dict:
    """Example `index` of the set `spec`: a pure function of (spec, index).

    Returns image (H, W, 3) uint8, mask (H, W) uint8 in {0, 255} (coverage >= 0.5), bbox (x0, y0, x1, y1)
    tight around the mask with exclusive ends, child and parent ints, soft_mask (H, W) float32 coverage.
    """
    res = spec.resolution
    inst = _sample(spec, index)
    layout = _layout(inst, res)
    cover = _coverage(inst, res, layout)
    area = float((cover >= 0.5).mean())
    for attempt in range(12):
        # The layout estimates the area on a coarse grid, and a long object turned diagonally may not fit
        # the image at the sampled area: rescale towards the range, and turn the object if it keeps failing.
        if spec.area_range[0] <= area <= spec.area_range[1]:
            break
        target = float(np.clip(area, spec.area_range[0] + 0.02, spec.area_range[1] - 0.02))
        inst = dataclasses.replace(inst, area=inst.area * target / max(area, 1e-6))
        if attempt >= 1:
            inst = dataclasses.replace(inst, angle=inst.angle + np.pi / 7)
        layout = _layout(inst, res)
        cover = _coverage(inst, res, layout)
        area = float((cover >= 0.5).mean())
    else:
        raise RuntimeError(f"synthetic.generate: no layout of example {index} of {spec} has a mask area "
                           f"fraction in {spec.area_range} (last {area:.3f}); please report this (spec, index).")
    fg = _foreground(inst, res, layout, cover >= 0.5)
    bg = _background(inst, res)
    composite = bg * (1 - cover[..., None]) + fg * cover[..., None]
    # Exactly the background-alone pixels wherever the object does not reach (see render_background).
    image = np.where(cover[..., None] > 0, _to_uint8(composite), _to_uint8(bg))
    mask = cover >= 0.5
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    bbox = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return {
        "image": image,
        "mask": mask.astype(np.uint8) * 255,
        "bbox": bbox,
        "child": inst.child,
        "parent": inst.parent,
        "soft_mask": cover.astype(np.float32),
    }


def generate_many(spec: SyntheticSpec, indices: Iterable[int]) -> list[dict]:
    return [generate(spec, int(i)) for i in indices]


def write_dataset(out_dir: str, spec: SyntheticSpec, n: int, start: int = 0) -> None:
    """Write examples start .. start + n - 1 as images/XXXXXX.png, masks/XXXXXX.png, annotations.json
    (a list of {file, mask, bbox, child, parent}, paths relative to out_dir) and spec.json."""
    from PIL import Image

    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"write_dataset: {out_dir!r} is not empty; refusing to overwrite. "
                              f"Pass an empty or new folder, or delete this one first.")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"write_dataset: {out_dir!r} exists and is not a folder.")
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "masks"), exist_ok=True)
    annotations = []
    for i in range(start, start + n):
        ex = generate(spec, i)
        name = f"{i:06d}.png"
        Image.fromarray(ex["image"]).save(os.path.join(out_dir, "images", name))
        Image.fromarray(ex["mask"]).save(os.path.join(out_dir, "masks", name))
        annotations.append({"file": f"images/{name}", "mask": f"masks/{name}", "bbox": list(ex["bbox"]),
                            "child": ex["child"], "parent": ex["parent"]})
    with open(os.path.join(out_dir, "annotations.json"), "w") as f:
        json.dump(annotations, f)
    meta = dict(dataclasses.asdict(spec), n=n, start=start, n_child=spec.n_child,
                children={c: dict(zip(("family", "pattern", "palette"), spec.child_appearance(c)))
                          for c in range(spec.n_child)})
    with open(os.path.join(out_dir, "spec.json"), "w") as f:
        json.dump(meta, f, indent=1)


def write_images(out_dir: str, spec: SyntheticSpec, n: int, start: int = 0, backgrounds: bool = False) -> None:
    """Write examples start .. start + n - 1 as plain XXXXXX.png files and nothing else: the box-free
    layout of the folder source. backgrounds=True writes each example's background alone (`render_background`),
    the object-free images of `--background_dir`."""
    from PIL import Image

    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"write_images: {out_dir!r} is not empty; refusing to overwrite. "
                              f"Pass an empty or new folder, or delete this one first.")
    os.makedirs(out_dir, exist_ok=True)
    for i in range(start, start + n):
        image = render_background(spec, i) if backgrounds else generate(spec, i)["image"]
        Image.fromarray(image).save(os.path.join(out_dir, f"{i:06d}.png"))


# ----------------------------------------------------------------------------------------------------
# Baselines that must fail: the set is only useful if trivial methods do not solve it.


def baselines(spec: SyntheticSpec, n: int = 600, examples: list[dict] | None = None) -> dict[str, float]:
    """Scores of trivial segmenters and of k-means on raw pixels; all should be poor (module docstring).

    The same functions (`onegan_tf.baselines`) score the demo's report, here on the uncropped images.
    """
    from onegan_tf import baselines as trivial

    ex = examples if examples is not None else generate_many(spec, range(n))
    gt = np.stack([e["mask"] > 127 for e in ex])
    images = np.stack([e["image"] for e in ex]).astype(np.float32) / 127.5 - 1.0
    child = np.array([e["child"] for e in ex])
    parent = np.array([e["parent"] for e in ex])
    b = trivial.all_baselines(images, gt, child, parent, trivial.mean_area_fraction(gt), spec.n_child,
                              spec.n_parents, spec.seed)
    return {"n": float(len(ex)), "all_fg_iou": b["all_foreground"]["iou"],
            "centred_ellipse_iou": b["centred_ellipse"]["iou"], "border_colour_iou": b["border_colour"]["iou"],
            "kmeans_child_nmi": b["kmeans_child"]["nmi"], "kmeans_child_acc": b["kmeans_child"]["acc"],
            "kmeans_parent_nmi": b["kmeans_parent"]["nmi"], "kmeans_parent_acc": b["kmeans_parent"]["acc"]}


def _save_grid(spec: SyntheticSpec, path: str, rows: int) -> None:
    from PIL import Image

    cols = spec.n_child
    tiles = generate_many(spec, range(rows * cols))
    r = spec.resolution
    grid = np.zeros((rows * r, cols * r, 3), np.uint8)
    for i, e in enumerate(tiles):
        y, x = divmod(i, cols)
        grid[y * r:(y + 1) * r, x * r:(x + 1) * r] = e["image"]
    Image.fromarray(grid).save(path)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m onegan_tf.data.synthetic", description=__doc__.split("\n")[0])
    p.add_argument("--baselines", action="store_true", help="Print the trivial baselines on --n images.")
    p.add_argument("--write", metavar="DIR", help="Write --n images to DIR (must be empty or new).")
    p.add_argument("--write_plain", metavar="DIR", help="Write --n images alone (no boxes, labels or masks) "
                   "to DIR: a box-free folder source.")
    p.add_argument("--write_backgrounds", metavar="DIR", help="Write the backgrounds alone of --n examples to "
                   "DIR: object-free images for --background_dir.")
    p.add_argument("--grid", metavar="PNG", help="Save a grid: one column per child, --rows rows.")
    p.add_argument("--rows", type=int, default=6)
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--n_parents", type=int, default=SyntheticSpec.n_parents)
    p.add_argument("--children_per_parent", type=int, default=SyntheticSpec.children_per_parent)
    p.add_argument("--resolution", type=int, default=SyntheticSpec.resolution)
    p.add_argument("--seed", type=int, default=SyntheticSpec.seed)
    a = p.parse_args(argv)
    spec = SyntheticSpec(a.n_parents, a.children_per_parent, a.resolution, a.seed)
    if not (a.baselines or a.write or a.write_plain or a.write_backgrounds or a.grid):
        p.error("nothing to do: pass --baselines, --write DIR, --write_plain DIR, --write_backgrounds DIR or "
                "--grid PNG")
    if a.write:
        write_dataset(a.write, spec, a.n, a.start)
        print(f"wrote {a.n} examples of {spec} to {a.write}")
    for out_dir, backgrounds in ((a.write_plain, False), (a.write_backgrounds, True)):
        if out_dir:
            write_images(out_dir, spec, a.n, a.start, backgrounds)
            print(f"wrote {a.n} {'backgrounds' if backgrounds else 'plain images'} of {spec} to {out_dir}")
    if a.grid:
        _save_grid(spec, a.grid, a.rows)
        print(f"saved {a.grid}")
    if a.baselines:
        for k, v in baselines(spec, a.n).items():
            print(f"{k:>22s}: {v:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
