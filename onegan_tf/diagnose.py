"""`python -m onegan_tf.diagnose`: what a trained model's networks learned, measured on its own generated images.

The evaluation (`onegan_tf.evaluate`) scores the model on real images; these diagnostics explain its numbers
from images the generator draws with known codes, so they need no dataset, labels or masks:

- `mask_reproduction_iou`: the reconstruction path (inference betas, encoder means; docs/design.md §4) applied to a
  generated image I reproduces the generator's own mask: IoU of `Î_m > 0.5` against `I_m > 0.5`, per image,
  averaged. The encoders cannot segment real images better than they read the generator's masks.
- `mask_parent_probe`: how much a generated mask says about the parent code that shaped it (Eq. 3-4): a
  linear classifier (ridge regression on one-hot parents) fit on the pooled masks of the first images,
  scored on the held-out rest, beside chance (the held-out set's most frequent parent).
- `encoder_accuracy`: `argmax ê_p(I)` against the parent that generated I, `argmax ê_c(I)` against its
  child (the targets of L_E, Eq. 12).
- `bypass_correlation`: Pearson correlation of E_p's bypass `B_fg(I)` with the generator's pre-image
  `A_fg`, over every element (L_MSE pulls them together, Eq. 13; the reconstruction mixes them, Eq. 9).
  With `--pose_discrete` `B_fg` is first brought into the canonical frame by the generated image's own
  discrete pose, as L_MSE compares them (`A_fg` is drawn before the pose is applied).

Children are drawn uniformly and z from N(0, I), both from the stateless `--seed`: the same run, seed and
count give the same numbers. The generators are the ones evaluation sees (the run's `--generator_weights`
unless `--generator_weights` says otherwise).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags

from onegan_tf import cli
from onegan_tf.checkpoint import CheckpointMismatchError, load_run
from onegan_tf.config import ConfigError, parent_of
from onegan_tf.files import write_json
from onegan_tf.metrics.segmentation import foreground, iou, mask_overlaps
from onegan_tf.model import OneGAN, sample_children, sample_z
from onegan_tf.pose import discrete_pose, unplace_discrete

PROBE_SIDE = 8            # masks are average-pooled to at most 8x8 before the linear probe
PROBE_TRAIN_FRACTION = 2 / 3
PROBE_RIDGE = 1.0
MIN_IMAGES = 30


def ridge_probe(train_x, train_y, test_x, test_y, n_classes: int, ridge: float = PROBE_RIDGE) -> dict:
    """A linear classifier from ridge regression onto one-hot labels (closed form, with a bias); its held-out
    accuracy and chance, the share of the held-out set's most frequent class."""
    def design(x):
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        return np.concatenate([x, np.ones((len(x), 1))], axis=1)

    X, T = design(train_x), np.eye(n_classes)[np.asarray(train_y)]
    reg = ridge * np.eye(X.shape[1])
    reg[-1, -1] = 0.0   # the bias is not shrunk
    W = np.linalg.solve(X.T @ X + reg, X.T @ T)
    test_y = np.asarray(test_y)
    pred = np.argmax(design(test_x) @ W, axis=1)
    return {"accuracy": float(np.mean(pred == test_y)),
            "chance": float(np.bincount(test_y, minlength=n_classes).max() / len(test_y)),
            "n_train": len(train_y), "n_test": len(test_y)}


class Correlation:
    """Pearson correlation of two equally shaped streams of tensors, accumulated batch by batch."""

    def __init__(self):
        self.n, self.s = 0, np.zeros(5)   # sums of x, y, x^2, y^2, xy

    def add(self, x, y) -> None:
        x = np.asarray(x, np.float64).ravel()
        y = np.asarray(y, np.float64).ravel()
        self.n += x.size
        self.s += [x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()]

    def value(self) -> float:
        sx, sy, sxx, syy, sxy = self.s / self.n
        return float((sxy - sx * sy) / np.sqrt((sxx - sx * sx) * (syy - sy * sy)))


def pool(masks, side: int = PROBE_SIDE) -> np.ndarray:
    """Average-pool (N, H, W) masks to (N, side, side) when H is a multiple of side (else keep them)."""
    m = np.asarray(masks, np.float32)
    n, h = m.shape[:2]
    if h <= side or h % side:
        return m
    f = h // side
    return m.reshape(n, side, f, side, f).mean(axis=(2, 4))


def _batch_fn(model: OneGAN):
    """One compiled call: generate from (child, z), then encode and reconstruct the generated image."""
    def run(child, z):
        gen = model.generate(child, z)
        rec = model.reconstruct(gen["I"])
        B_fg = rec["B_fg"]
        if model.cfg.pose_discrete:                      # as L_MSE compares them: A_fg is in the canonical frame
            B_fg = unplace_discrete(B_fg, discrete_pose(z))
        return {"I_m": gen["I_m"], "A_fg": gen["A_fg"], "I_m_hat": rec["I_m_hat"], "B_fg": B_fg,
                "e_p_hat": rec["e_p_hat"], "e_c_hat": rec["e_c_hat"]}
    size = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, model.cfg.d_z], tf.float32)
    return tf.function(run, input_signature=size)


def check_counts(num_images: int, batch_size: int) -> None:
    if num_images < MIN_IMAGES:
        raise ValueError(f"--num_images={num_images}: the held-out mask probe needs at least {MIN_IMAGES} images")
    if batch_size < 1:
        raise ValueError(f"--batch_size={batch_size} must be positive")


def diagnose(model: OneGAN, num_images: int = 600, seed: int = 0, batch_size: int = 50) -> dict:
    """Every diagnostic of the module docstring on `num_images` generated images."""
    check_counts(num_images, batch_size)
    cfg = model.cfg
    step = _batch_fn(model)
    ious, masks, parents, p_hits, c_hits = [], [], [], [], []
    corr = Correlation()
    for first in range(0, num_images, batch_size):
        b = min(batch_size, num_images - first)
        key = tf.random.experimental.stateless_split(tf.constant([seed, first], tf.int64), 2)
        child = sample_children(key[0], b, cfg.n_child)
        parent = parent_of(child, cfg.children_per_parent).numpy()
        out = {k: v.numpy() for k, v in step(child, sample_z(key[1], b, cfg.d_z)).items()}
        inter, union, _ = mask_overlaps(foreground(out["I_m_hat"][..., 0]), foreground(out["I_m"][..., 0]))
        ious.append(iou(inter, union))
        masks.append(pool(out["I_m"][..., 0]))
        parents.append(parent)
        p_hits.append(np.argmax(out["e_p_hat"], -1) == parent)
        c_hits.append(np.argmax(out["e_c_hat"], -1) == child.numpy())
        if cfg.bypass:
            corr.add(out["B_fg"], out["A_fg"])
    masks, parents = np.concatenate(masks), np.concatenate(parents)
    n_train = round(num_images * PROBE_TRAIN_FRACTION)
    return {
        "num_images": num_images, "seed": seed,
        "mask_reproduction_iou": float(np.concatenate(ious).mean()),
        "mask_parent_probe": {**ridge_probe(masks[:n_train], parents[:n_train], masks[n_train:],
                                            parents[n_train:], cfg.n_parent),
                              "features": f"generated I_m average-pooled to {masks.shape[1]}x{masks.shape[2]}",
                              "ridge": PROBE_RIDGE},
        "encoder_accuracy": {"parent": float(np.concatenate(p_hits).mean()),
                             "child": float(np.concatenate(c_hits).mean()),
                             "parent_chance": 1.0 / cfg.n_parent, "child_chance": 1.0 / cfg.n_child},
        # Without the bypass (Tab. 3b) there is no B_fg to correlate.
        "bypass_correlation": {"B_fg_A_fg": corr.value() if cfg.bypass else None},
    }


def run_diagnostics(run_dir: str, out: str | None = None, checkpoint: str | None = None, num_images: int = 600,
                    seed: int = 0, batch_size: int = 50, weights: str | None = None) -> dict:
    """Load the run, compute the diagnostics and write them to `out` (default RUN/diagnostics.json)."""
    t0 = time.time()
    check_counts(num_images, batch_size)
    run = load_run(run_dir, checkpoint, weights)
    result = diagnose(run.model, num_images, seed, batch_size)
    result.update({"run_dir": run_dir, "checkpoint": run.checkpoint, "step": run.step,
                   "generator_weights": run.weights,
                   "command": f"python -m onegan_tf.diagnose --run_dir={run_dir} --num_images={num_images} "
                              f"--seed={seed} --generator_weights={run.weights}",
                   "wall_s": round(time.time() - t0, 1)})
    write_json(out or os.path.join(run_dir, "diagnostics.json"), result)
    return result


def format_summary(d: dict) -> str:
    probe, enc = d["mask_parent_probe"], d["encoder_accuracy"]
    corr = d["bypass_correlation"]["B_fg_A_fg"]
    return "\n".join([
        (f"{d['run_dir']} step {d['step']} ({d['generator_weights']} generator weights): {d['num_images']} "
         f"generated images, seed {d['seed']}"),
        f"mask reproduction IoU (Î_m of generated I vs its I_m)   {d['mask_reproduction_iou']:.3f}",
        (f"parent from generated masks (held-out linear probe)     {probe['accuracy']:.3f}  "
         f"(chance {probe['chance']:.3f}, {probe['n_train']} fit / {probe['n_test']} held out)"),
        (f"E_p names the parent of generated images                {enc['parent']:.3f}  "
         f"(chance {enc['parent_chance']:.3f})"),
        (f"E_c names the child of generated images                 {enc['child']:.3f}  "
         f"(chance {enc['child_chance']:.3f})"),
        "correlation of B_fg with A_fg                           "
        + ("n/a (no bypass)" if corr is None else f"{corr:.3f}"),
    ])


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run_dir", None, "Run directory written by `python -m onegan_tf.train`.", flag_values=fv)
    flags.DEFINE_string("checkpoint", "", "Checkpoint prefix ('' = the latest of run_dir/ckpt).", flag_values=fv)
    flags.DEFINE_string("out", "", "Output JSON file ('' = RUN/diagnostics.json).", flag_values=fv)
    flags.DEFINE_integer("num_images", 600, "Generated images; the first 2/3 fit the mask probe, the rest test it.",
                         flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the generated classes and codes.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 50, "Images per model call.", flag_values=fv)
    flags.DEFINE_enum("generator_weights", "", ["", "ema", "raw"], "Weights of V_* and G_*: ema (their moving "
                      "average), raw (the last iterate); '' = the run's --generator_weights.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m onegan_tf.diagnose --run_dir=RUN [--out=FILE]`; 2 on bad input."""
    F = cli.parse(argv, define_flags, required=["run_dir"],
                  usage="python -m onegan_tf.diagnose --run_dir=RUN [--out=FILE] [--num_images=600]")
    if F is None:
        return 2
    try:
        result = run_diagnostics(F.run_dir, F.out or None, F.checkpoint or None, F.num_images, F.seed,
                                 F.batch_size, F.generator_weights or None)
    except (CheckpointMismatchError, ConfigError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(result))
    print(f"written to {F.out or os.path.join(F.run_dir, 'diagnostics.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
