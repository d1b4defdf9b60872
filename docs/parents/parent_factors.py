"""From which part of a generated image E_p names the parent: the outline, the appearance or the background.

In a generated image three codes could carry the parent: `v_p` sets the outline (G_fg0, and the mask head
with `--mask_sees_parent`), the child code `v_c` paints the appearance and belongs to one parent by the
hierarchy, and the background is drawn from `v_bg = V_bg(e_p)`. The generator ties the three together, so
E_p could learn the parent from any of them, and on real images only the outline means the family (the
appearances and backgrounds of the synthetic sets are shared across families). This draws `--num_images`
images in which each part gets its own random parent — the outline parent through G_fg0 (and, in the first
setting, through G_fg2 too), the appearance from a random child, the background from a random parent — and
counts how often `argmax ê_p` names each. The matched images (the hierarchy, as trained) are scored beside.

usage: PYTHONPATH=. python docs/parents/parent_factors.py --run_dir=RUN --out=FILE.json
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags
from evidence import json_main

from onegan_tf.checkpoint import load_run
from onegan_tf.config import parent_of
from onegan_tf.model import compose


def parent_factors(run_dir: str, num_images: int, seed: int) -> dict:
    model = load_run(run_dir).model
    cfg = model.cfg
    rng = np.random.default_rng(seed)
    z = tf.constant(rng.normal(size=(num_images, cfg.d_z)).astype(np.float32))
    outline, background = (rng.integers(cfg.n_parent, size=num_images) for _ in range(2))
    child = rng.integers(cfg.n_child, size=num_images)
    appearance = parent_of(tf.constant(child), cfg.children_per_parent).numpy()
    v_outline = model.V_p(tf.one_hot(outline, cfg.n_parent))
    v_c = model.V_c(tf.one_hot(child, cfg.n_child))
    I_bg = model.G_bg1(model.G_bg0((model.V_bg(tf.one_hot(background, cfg.n_parent)), z)))
    A_fg = model.G_fg0((v_outline, z))

    def named(I) -> np.ndarray:
        return tf.argmax(model.encode(I)["e_p_hat"], -1).numpy()

    out = {"run_dir": run_dir, "num_images": num_images, "seed": seed, "chance": 1.0 / cfg.n_parent}
    # G_fg2 also sees a parent code (the mask head with --mask_sees_parent, the child block): the outline's
    # parent, or the appearance's.
    for setting, v_p2 in (("G_fg2_sees_outline_parent", v_outline),
                          ("G_fg2_sees_appearance_parent", model.V_p(tf.one_hot(appearance, cfg.n_parent)))):
        fg = model.draw_foreground(A_fg, v_p2, v_c, z)
        pred = named(compose(I_bg, fg["I_fg"], fg["I_m"]))
        out[setting] = {"names_outline_parent": float((pred == outline).mean()),
                        "names_appearance_parent": float((pred == appearance).mean()),
                        "names_background_parent": float((pred == background).mean())}
    out["matched_accuracy"] = float((named(model.generate(tf.constant(child, tf.int32), z)["I"]) == appearance).mean())
    return out


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run_dir", None, "Trained run.", flag_values=fv)
    flags.DEFINE_string("out", None, "JSON file to write.", flag_values=fv)
    flags.DEFINE_integer("num_images", 1000, "Generated images.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the draws.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    return json_main(argv, define_flags, __doc__, ("run_dir", "out"),
                     lambda fv: parent_factors(fv.run_dir, fv.num_images, fv.seed))


if __name__ == "__main__":
    sys.exit(main())
