"""A second synthetic configuration, never used to choose a setting: `python -m onegan_tf.data.heldout --out_dir=DIR`.

The demo's settings (`configs/demo.cfg`) were chosen by looking at the built-in synthetic set. This set is
drawn by the same code (`synthetic.generate`) with other parameters — another seed, the four shape families
the demo never shows, smaller objects, other background kinds and preferences, images of several sizes —
and written as a folder tree of JPEG files (`images/`, PNG `masks/`, `annotations.json`, `spec.json`; the
`folder` source), a few of them grayscale, so that it also goes through the file-reading path a user's data
takes. `configs/heldout.cfg` trains it with the demo's settings unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Sequence

import numpy as np
from absl import flags
from PIL import Image

from onegan_tf import cli
from onegan_tf.data.synthetic import SyntheticSpec, generate

SPEC = SyntheticSpec(n_parents=4, children_per_parent=3, seed=20261130,
                     families=("leaf", "mushroom", "crescent", "tree"), area_range=(0.08, 0.40),
                     backgrounds=("blotches", "horizon", "noise"))
SIZES = (48, 64, 96, 128)  # image side in pixels, drawn per image
GRAYSCALE_EVERY = 50  # every 50th image is written as a one-channel JPEG
JPEG_QUALITY = 90
N_IMAGES = 3000


def image_size(index: int) -> int:
    """The side of image `index`, a pure function of (SPEC.seed, index)."""
    return int(np.random.default_rng([SPEC.seed, index, 1]).choice(SIZES))


def write(out_dir: str, n: int = N_IMAGES) -> None:
    """Write images 0 .. n - 1 of the held-out set to `out_dir` (which must be empty or new)."""

    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise FileExistsError(f"heldout.write: {out_dir!r} exists and is not an empty folder; refusing to "
                              "overwrite. Pass a new folder, or delete this one first.")
    # Written next to the destination, then renamed: a failed run leaves no half-written set behind.
    tmp = f"{out_dir.rstrip(os.sep)}.partial"
    if os.path.exists(tmp):
        raise FileExistsError(f"heldout.write: {tmp!r} is left from an interrupted run; delete it first.")
    os.makedirs(os.path.join(tmp, "images"))
    os.makedirs(os.path.join(tmp, "masks"))
    annotations = []
    for i in range(n):
        size = image_size(i)
        ex = generate(dataclasses.replace(SPEC, resolution=size), i)
        name = f"{i:06d}"
        image = Image.fromarray(ex["image"])
        if i % GRAYSCALE_EVERY == GRAYSCALE_EVERY - 1:
            image = image.convert("L")
        image.save(os.path.join(tmp, "images", f"{name}.jpg"), quality=JPEG_QUALITY)
        Image.fromarray(ex["mask"]).save(os.path.join(tmp, "masks", f"{name}.png"))
        annotations.append({"file": f"images/{name}.jpg", "mask": f"masks/{name}.png", "bbox": list(ex["bbox"]),
                            "child": ex["child"], "parent": ex["parent"]})
    with open(os.path.join(tmp, "annotations.json"), "w") as f:
        json.dump(annotations, f)
    meta = dict(dataclasses.asdict(SPEC), resolution=list(SIZES), n=n, n_child=SPEC.n_child,
                children={c: dict(zip(("family", "pattern", "palette"), SPEC.child_appearance(c)))
                          for c in range(SPEC.n_child)})
    with open(os.path.join(tmp, "spec.json"), "w") as f:
        json.dump(meta, f, indent=1)
    if os.path.isdir(out_dir):
        os.rmdir(out_dir)
    os.rename(tmp, out_dir)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("out_dir", None, "Folder to write (must be new or empty), e.g. data/heldout.", flag_values=fv)
    flags.DEFINE_integer("n", N_IMAGES, "Number of images (at least 10: the 80/20 split needs both halves).",
                         lower_bound=10, flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    fv = cli.parse(argv, define_flags, required=["out_dir"],
                   usage="python -m onegan_tf.data.heldout --out_dir=DIR [--n=3000]")
    if fv is None:
        return 2
    write(fv.out_dir, fv.n)
    print(f"wrote {fv.n} images of {SPEC} (sides {SIZES}) to {fv.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
