"""The generated outlines of each parent beside the true outlines of each real parent, as one PNG.

Top block: one row per parent code p (its first child), ten shared draws of z, the generated masks I_m. Bottom
block: one row per real parent (shape family), the true masks of its first ten crops of the evaluated split
(the run's --final_split). Where the generator's parents mean the families, row p of the top block looks like
some row of the bottom block.

usage: PYTHONPATH=. python docs/parents/parent_masks.py --run_dir=RUN --out=FILE.png
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags
from PIL import Image

from onegan_tf import cli, data
from onegan_tf.checkpoint import load_run

COLUMNS = 10
GAP = 4   # pixels of grey between the two blocks


def parent_masks(run_dir: str, seed: int) -> np.ndarray:
    run = load_run(run_dir)
    model, cfg = run.model, run.config
    k, mc = cfg.model.children_per_parent, cfg.model
    z = tf.constant(np.random.default_rng(seed).normal(size=(COLUMNS, mc.d_z)), tf.float32)
    generated = [model.generate(tf.fill([COLUMNS], p * k), z)["I_m"].numpy()[..., 0] for p in range(mc.n_parent)]
    real = {}  # one row per family of the data, which can be fewer than the parent codes (--n_parent=12)
    for b in data.eval_dataset(cfg.data, mc.image_size, 100, cfg.train.final_split,
                               classes=(mc.n_child, mc.n_parent)).as_numpy_iterator():
        for m, p in zip(b["mask"][..., 0], b["parent"]):
            if len(real.setdefault(int(p), [])) < COLUMNS:
                real[int(p)].append(m)
    rows = [np.concatenate(list(g), 1) for g in generated]
    rows.append(np.full((GAP, rows[0].shape[1]), 0.5))
    rows += [np.concatenate(real[p] + [np.zeros_like(rows[0][:, :mc.image_size])] * (COLUMNS - len(real[p])), 1)
             for p in sorted(real)]
    return np.concatenate(rows, 0)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run_dir", None, "Trained run directory.", flag_values=fv)
    flags.DEFINE_string("out", None, "PNG file to write.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the draws of z.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    fv = cli.parse(argv, define_flags, required=("run_dir", "out"),
                   usage=__doc__.split("usage: ")[1].split("\n")[0])
    if fv is None:
        return 2
    grid = parent_masks(fv.run_dir, fv.seed)
    Image.fromarray((np.clip(grid, 0, 1) * 255).astype(np.uint8)).resize(
        (grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(fv.out)
    print(fv.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
