"""The inference tasks of OneGAN (paper Sec. 5, supplementary Sec. D) as functions of a loaded model.

Every task is one call of the model's two paths, never a copy of them:
- `generate(model, child, z)`: conditional generation, Eq. 1-5 (parents follow the hierarchy);
  `generate_like(model, images)`: generation from the classes encoded from real images (suppl. Fig. 1).
- `reconstruct(model, images)`: reconstruction and segmentation (Fig. 4), at the inference betas of docs/design.md §4.
- `segment_distilled(segmenter, images)`: the mask from the segmenter distilled from the generator (not in
  the paper; `onegan_tf.distill`); `--task=segment` uses it when the run has one.
- `cluster(model, images)`: child and parent cluster ids, argmax of ê_c and ê_p, with their probabilities.
- `translate(model, images, target_child)`: image-to-image translation (Fig. 6), v_cmix := V_c(target).
- `remove_object(model, images)`: the reconstructed background Î_bg, the object removed (suppl. D.4).

Images are float [B, H, W, 3] in [-1, 1] at the model's size (numpy or tensors); results are dicts of
tensors keyed by the paper's names. `data.images.load_images` prepares user files of any size and mode;
`figure_grids` draws the paper's figures. The command line:
    python -m onegan_tf.tasks --run_dir=RUN --task=segment|cluster|translate|remove|generate|all \\
        --inputs=FOLDER_OR_FILES --out=DIR [--target_child=3,7] [--figures]

writes PNGs per image and task, results.json and results.csv (cluster ids, probabilities, mask area), and
with --figures the figure grids under DIR/figures.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags

from onegan_tf import cli, figures
from onegan_tf.checkpoint import CheckpointMismatchError, load_run
from onegan_tf.checks import check_classes, check_image_values, check_images
from onegan_tf.data.images import load_images
from onegan_tf.files import write_json, write_text
from onegan_tf.metrics.segmentation import MASK_THRESHOLD, foreground
from onegan_tf.model import OneGAN, class_predictions, sample_z

TASKS = ("segment", "cluster", "translate", "remove", "generate")
FIGURE_COLUMNS = 8        # columns of the figure grids (real images or classes)
TRANSLATION_TARGETS = 6   # default target classes of --task=translate and of the translation figure


# ---------------------------------------------------------------------------------------------- the tasks


def _images(images, size: int) -> tf.Tensor:
    """User images (numpy or tensors) as float32, checked as every route checks them: shape, values in [-1, 1]."""
    images = tf.convert_to_tensor(images)
    images = tf.cast(images, tf.float32) if images.dtype.is_floating else images
    return check_image_values(check_images(images, size), size)


def _classes(classes) -> tf.Tensor:
    """Class ids as the model indexes them: one int or a list of them -> int32 [B]; other dtypes are left for
    the model's checks to name."""
    classes = tf.reshape(tf.convert_to_tensor(classes), [-1])
    return tf.cast(classes, tf.int32) if classes.dtype.is_integer else classes


def _z_key(seed, stream: int = 0) -> tf.Tensor:
    """The stateless key of z stream `stream` of `seed` (a Python int or an int64 tensor)."""
    return tf.stack([tf.cast(seed, tf.int64), tf.constant(stream, tf.int64)])


def generate(model: OneGAN, child, z=None, seed: int = 0, parent=None) -> dict:
    """Conditional generation (Eq. 1-5): I, I_fg, I_m, I_bg from child classes [B] and pose codes z [B, d_z].

    z=None draws z ~ N(0, I) from `seed`; the parent follows the hierarchy unless given.
    """
    child = _classes(child)
    if z is None:
        z = sample_z(_z_key(seed), int(child.shape[0]), model.cfg.d_z)
    parent = None if parent is None else _classes(parent)
    return model.generate(child, tf.convert_to_tensor(z, tf.float32), parent=parent)


def generate_like(model: OneGAN, images, n_per_image: int = 1, seed: int = 0, shared_z: bool = True) -> dict:
    """Generation conditioned on real images (suppl. Fig. 1): child = argmax ê_c, parent = argmax ê_p of
    each image, with a new z per row.

    Returns generate()'s dict over n_per_image x N samples, row-major: sample k * N + j is row k, image j.
    shared_z=True gives every image of a row the same z (the figure's layout: pose fixed along a row);
    False draws an independent z per sample (for metrics). `seed` may be a tensor (inside a tf.function).
    """
    clusters = cluster(model, images)
    n = tf.shape(clusters["child"])[0]
    if shared_z:
        z = tf.repeat(sample_z(_z_key(seed, 1), n_per_image, model.cfg.d_z), n, axis=0)
    else:
        z = sample_z(_z_key(seed, 1), n_per_image * n, model.cfg.d_z)
    return generate(model, tf.tile(clusters["child"], [n_per_image]), z,
                    parent=tf.tile(clusters["parent"], [n_per_image]))


def reconstruct(model: OneGAN, images, betas: dict | None = None) -> dict:
    """Reconstruction and segmentation (Fig. 4): model.reconstruct at the inference betas (all 1) with the
    encoder means. The keys of interest: I_hat (reconstruction), I_fg_hat, I_bg_hat, I_m_hat (mask in [0, 1]).
    Given betas must agree with the model's Tab. 3b switches (`OneGAN.check_inference_betas`)."""
    betas = None if betas is None else model.check_inference_betas(betas)
    return model.reconstruct(_images(images, model.cfg.image_size), betas=betas)


def segment_distilled(segmenter, images):
    """Segmentation by the segmenter distilled from the generator (onegan_tf.distill): I_m [B, H, W, 1] in
    [0, 1] from one network, instead of the reconstruction path's three encoders and two generators."""
    return segmenter(_images(images, segmenter.input_shape[1]), training=False)


def cluster(model: OneGAN, images) -> dict:
    """Clustering (Tab. 2): child = argmax ê_c(E_c(x)), parent = argmax ê_p(E_p(x)).

    Returns child [B], parent [B] (int32), child_probs [B, N_C], parent_probs [B, N_P] (softmax) and
    child_prob, parent_prob [B] (the probability of the chosen cluster).
    """
    return class_predictions(model.encode(_images(images, model.cfg.image_size)))


def translate(model: OneGAN, images, target_child) -> dict:
    """Image-to-image translation (Fig. 6): the reconstruction path with v_cmix replaced by V_c(target)
    (docs/design.md §4); codes, pose and the background bypass come from the image. target_child: an int or [B].
    The translated image is `I_hat`."""
    images = _images(images, model.cfg.image_size)
    target = tf.convert_to_tensor(target_child)
    if target.shape.rank == 0:
        target = tf.fill([tf.shape(images)[0]], target)
    return model.reconstruct(images, target_child=_classes(target))


def remove_object(model: OneGAN, images) -> dict:
    """Object removal / background inpainting (suppl. D.4) in one forward pass: the reconstructed background
    I_bg_hat = G_bg1(mix(G_bg0(v_bg, ẑ), E_bg(I, Î_m))); also the predicted mask I_m_hat."""
    rec = reconstruct(model, images)
    return {"I_bg_hat": rec["I_bg_hat"], "I_m_hat": rec["I_m_hat"]}


# ---------------------------------------------------------------------------------------- per-image results


def mask_area(I_m) -> np.ndarray:
    """Fraction of the pixels of each mask that are foreground (above MASK_THRESHOLD, docs/design.md §7)."""
    I_m = foreground(I_m)
    return I_m.reshape(len(I_m), -1).mean(axis=1)


def image_results(rec: dict) -> list[dict]:
    """Per image of one reconstruct() call: cluster ids, their probabilities and the mask area."""
    c = {k: np.asarray(v) for k, v in class_predictions(rec).items()}
    area = mask_area(rec["I_m_hat"])
    return [{"child": int(c["child"][i]), "child_prob": float(c["child_prob"][i]),
             "parent": int(c["parent"][i]), "parent_prob": float(c["parent_prob"][i]),
             "mask_area": float(area[i])} for i in range(len(area))]


# ------------------------------------------------------------------------------------------ figure grids


def spread(n_classes: int, k: int) -> np.ndarray:
    """k class ids spread evenly over [0, n_classes) (all of them when k >= n_classes)."""
    k = min(k, n_classes)
    return np.unique(np.linspace(0, n_classes - 1, k).round().astype(np.int32))


FIGURES = ("generation", "reconstruction", "translation", "conditional_generation", "removal")


def figure_grids(model: OneGAN, images=None, gt_mask=None, targets=None, n_rows: int = 5, seed: int = 0,
                 which=FIGURES) -> dict:
    """The paper's figure grids as uint8 arrays, keyed by name (see `onegan_tf.figures`).

    generation (Fig. 3) from FIGURE_COLUMNS classes spread over N_C; with real `images` [N, H, W, 3] also
    reconstruction (Fig. 4, with `gt_mask` [N, H, W(, 1)] if given), translation (Fig. 6, to `targets`,
    default TRANSLATION_TARGETS classes spread over N_C, under a header generated from each target),
    conditional_generation (suppl. Fig. 1, n_rows rows) and removal (suppl. Fig. 4).
    """
    grids = {}
    np_ = lambda d: {k: np.asarray(v) for k, v in d.items()}  # noqa: E731
    if gt_mask is not None:
        gt_mask = np.asarray(gt_mask, np.float32)
        gt_mask = gt_mask[..., None] if gt_mask.ndim == 3 else gt_mask
    if "generation" in which:
        grids["generation"] = figures.generation_figure(
            np_(generate(model, spread(model.cfg.n_child, FIGURE_COLUMNS), seed=seed)))
    if images is None:
        return grids
    images = np.asarray(images, np.float32)
    if "reconstruction" in which:
        grids["reconstruction"] = figures.reconstruction_figure(images, np_(reconstruct(model, images)), gt_mask)
    if "translation" in which:
        targets = spread(model.cfg.n_child, TRANSLATION_TARGETS) if targets is None else np.asarray(targets)
        translated = np.stack([np.asarray(translate(model, images, t)["I_hat"]) for t in targets])
        header = np.asarray(generate(model, targets, seed=seed)["I"])
        grids["translation"] = figures.translation_figure(images, translated, header)
    if "conditional_generation" in which:
        gen = np.asarray(generate_like(model, images, n_rows, seed=seed)["I"])
        grids["conditional_generation"] = figures.conditional_generation_figure(
            images, gen.reshape((n_rows, len(images)) + gen.shape[1:]))
    if "removal" in which:
        out = np_(remove_object(model, images))
        grids["removal"] = figures.removal_figure(images, out["I_m_hat"], out["I_bg_hat"], gt_mask)
    return grids


def _output_names(paths: list[str]) -> list[str]:
    """File stems, made unique (inputs from several folders may share a name)."""
    names, seen = [], {}
    for p in paths:
        stem = os.path.splitext(os.path.basename(p))[0]
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


# ------------------------------------------------------------------------------------------ command line

FIGURES_OF_TASK = {"segment": ("reconstruction",), "cluster": ("conditional_generation",),
                   "translate": ("translation",), "remove": ("removal",),
                   "generate": ("generation", "conditional_generation")}


def _png(path: str, batch) -> None:
    figures.save_png(path, figures.to_uint8(np.asarray(batch)[None])[0])


def run_tasks(model: OneGAN, tasks, inputs, out_dir: str, *, target_child=None, n_per_image: int = 5,
              child=None, make_figures: bool = False, batch_size: int = 16, seed: int = 0, log=None,
              meta: dict | None = None, segmenter=None) -> dict:
    """What the CLI does, as a function: run `tasks` over the images of `inputs`, write PNGs under
    out_dir/<task>/, results.json and results.csv, and the figure grids under out_dir/figures.

    segmenter: the run's distilled segmenter; when given, `segment` writes its mask as <name>_mask.png and
    mask_area, and the reconstruction path's as <name>_mask_encoder.png and mask_area_encoder."""
    tasks = list(TASKS) if tasks in ("all", ["all"]) else [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; allowed: {', '.join(TASKS)} or all")
    size, cfg = model.cfg.image_size, model.cfg
    images, paths, skipped = load_images(inputs, size, log) if inputs else (None, [], [])
    if not paths and set(tasks) - {"generate"}:
        raise ValueError(f"no readable images in --inputs={inputs!r} (skipped {len(skipped)}); tasks "
                         f"{', '.join(t for t in tasks if t != 'generate')} need at least one")
    targets = spread(cfg.n_child, TRANSLATION_TARGETS) if target_child is None else np.atleast_1d(target_child)
    # Checked before any image is written, so that a bad flag leaves the output folder as it was.
    for name, classes in (("target_child", targets), ("child", child)):
        if classes is not None:
            check_classes(np.atleast_1d(classes), cfg.n_child, name)
    names = _output_names(paths)
    rows = []
    for start in range(0, len(paths), batch_size):
        rows += _run_batch(model, tasks, images[start:start + batch_size], names[start:start + batch_size],
                           paths[start:start + batch_size], out_dir, targets, n_per_image, seed, segmenter)
    if "generate" in tasks and (not paths or child is not None):
        classes = spread(cfg.n_child, FIGURE_COLUMNS) if child is None else np.atleast_1d(child)
        gen = np.asarray(generate(model, classes, seed=seed)["I"])
        for k, c in enumerate(classes):
            _png(os.path.join(out_dir, "generate", f"child{int(c)}_{k}.png"), gen[k])
    written = {}
    if make_figures:
        which = sorted({f for t in tasks for f in FIGURES_OF_TASK[t]})
        grids = figure_grids(model, None if images is None else images[:FIGURE_COLUMNS],
                             targets=targets, n_rows=n_per_image, seed=seed, which=which)
        for name, grid in grids.items():
            written[name] = figures.save_png(os.path.join(out_dir, "figures", f"{name}.png"), grid)
    report = {**(meta or {}), "tasks": tasks, "n_images": len(rows), "skipped": skipped,
              "target_child": [int(t) for t in targets] if "translate" in tasks else None,
              "mask_threshold": MASK_THRESHOLD, "segmenter": "encoder" if segmenter is None else "distilled",
              "figures": written, "images": rows}
    _write_results(out_dir, report)
    return report


def _run_batch(model: OneGAN, tasks, batch, names, paths, out_dir, targets, n_per_image, seed, segmenter):
    """The tasks on one batch of input images: their PNGs written, one results row per image returned."""
    rec = {k: np.asarray(v) for k, v in reconstruct(model, batch).items()}
    distilled = None if segmenter is None else np.asarray(segment_distilled(segmenter, batch))
    rows = []
    for i, r in enumerate(image_results(rec)):
        if distilled is not None:
            r = {**r, "mask_area": float(mask_area(distilled[i:i + 1])[0]), "mask_area_encoder": r["mask_area"]}
        rows.append({"name": names[i], "path": paths[i], **r})
    for i, name in enumerate(names):
        if "segment" in tasks:
            _png(os.path.join(out_dir, "segment", f"{name}_reconstruction.png"), rec["I_hat"][i])
            _png(os.path.join(out_dir, "segment", f"{name}_foreground.png"), rec["I_fg_hat"][i])
            if distilled is None:
                _png(os.path.join(out_dir, "segment", f"{name}_mask.png"), rec["I_m_hat"][i])
            else:
                _png(os.path.join(out_dir, "segment", f"{name}_mask.png"), distilled[i])
                _png(os.path.join(out_dir, "segment", f"{name}_mask_encoder.png"), rec["I_m_hat"][i])
        if "remove" in tasks:
            _png(os.path.join(out_dir, "remove", f"{name}_background.png"), rec["I_bg_hat"][i])
            _png(os.path.join(out_dir, "remove", f"{name}_masked.png"),
                 figures.masked(batch[i:i + 1], rec["I_m_hat"][i:i + 1])[0])
    if "translate" in tasks:
        for t in targets:
            out = np.asarray(translate(model, batch, int(t))["I_hat"])
            for i, name in enumerate(names):
                _png(os.path.join(out_dir, "translate", f"{name}_to_child{int(t)}.png"), out[i])
    if "generate" in tasks:
        gen = np.asarray(generate_like(model, batch, n_per_image, seed=seed)["I"])
        for k in range(n_per_image):
            for i, name in enumerate(names):
                _png(os.path.join(out_dir, "generate", f"{name}_z{k}.png"), gen[k * len(batch) + i])
    return rows


def _write_results(out_dir: str, report: dict) -> None:
    write_json(os.path.join(out_dir, "results.json"), report, sort_keys=False)
    columns = ["name", "path", "child", "child_prob", "parent", "parent_prob", "mask_area"]
    if report["images"] and "mask_area_encoder" in report["images"][0]:
        columns.append("mask_area_encoder")
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns)
    writer.writeheader()
    writer.writerows(report["images"])
    write_text(os.path.join(out_dir, "results.csv"), table.getvalue(), newline="")


def _int_list(values):
    return None if not values else [int(v) for v in values]


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run_dir", None, "Run directory written by `python -m onegan_tf.train`.", flag_values=fv)
    flags.DEFINE_string("checkpoint", "", "Checkpoint prefix to load ('' = the latest of run_dir/ckpt).",
                        flag_values=fv)
    flags.DEFINE_enum("task", "all", list(TASKS) + ["all"], "Which inference task to run.", flag_values=fv)
    flags.DEFINE_enum("segmenter", "auto", ["auto", "distilled", "encoder"], "Masks of --task=segment: the "
                      "distilled segmenter (auto: when the run has one) or the reconstruction path's (encoder).",
                      flag_values=fv)
    flags.DEFINE_enum("generator_weights", "", ["", "ema", "raw"], "Weights of V_* and G_*: ema (their moving "
                      "average), raw (the last iterate); '' = the run's --generator_weights.", flag_values=fv)
    flags.DEFINE_list("inputs", [], "Image folder(s) and/or files, comma-separated (any size and mode).",
                      flag_values=fv)
    flags.DEFINE_string("out", None, "Output directory.", flag_values=fv)
    flags.DEFINE_list("target_child", [], "Target child classes of --task=translate (default: 6 spread "
                      "over the classes).", flag_values=fv)
    flags.DEFINE_list("child", [], "Child classes to generate from without inputs (--task=generate).", flag_values=fv)
    flags.DEFINE_integer("n_per_image", 5, "Generated images per input image (--task=generate), one z per row.",
                         flag_values=fv)
    flags.DEFINE_boolean("figures", False, "Also draw the paper's figure grids under OUT/figures.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 16, "Images per forward pass.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the pose codes z.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m onegan_tf.tasks --run_dir=RUN --task=... --inputs=... --out=DIR`; 2 on bad input."""
    F = cli.parse(argv, define_flags, required=["run_dir", "out"],
                  usage="python -m onegan_tf.tasks --run_dir=RUN --task=segment|cluster|translate|remove|generate|all "
                  "--inputs=FOLDER_OR_FILES --out=DIR")
    if F is None:
        return 2
    try:
        run = load_run(F.run_dir, F.checkpoint or None, F.generator_weights or None)
        if F.segmenter == "distilled" and run.segmenter is None:
            raise ValueError(f"--segmenter=distilled but {run.checkpoint} holds no distilled segmenter "
                             "(train with --distill_steps > 0), or use --segmenter=auto|encoder")
        report = run_tasks(run.model, F.task, F.inputs, F.out, target_child=_int_list(F.target_child),
                           n_per_image=F.n_per_image, child=_int_list(F.child), make_figures=F.figures,
                           batch_size=F.batch_size, seed=F.seed,
                           meta={"run_dir": run.run_dir, "checkpoint": run.checkpoint, "step": run.step,
                                 "generator_weights": run.weights},
                           segmenter=None if F.segmenter == "encoder" else run.segmenter)
    except (FileNotFoundError, ValueError, CheckpointMismatchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{report['n_images']} image(s) processed, {len(report['skipped'])} skipped; results in "
          f"{os.path.join(F.out, 'results.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
