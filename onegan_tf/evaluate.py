"""`python -m onegan_tf.evaluate --run_dir=RUN`: the evaluation protocol of docs/design.md §7 on a trained run.

run directory -> config.json + checkpoint (`onegan_tf.checkpoint`) -> `ModelEvalContext` (the registry's
`EvalContext` over `data.eval_dataset` and the model's tasks) -> `metrics.compute` -> RUN/eval/report.json,
a printed table, and the figure grids (generation, reconstruction, translation, conditional generation,
removal) as PNGs next to the report.

    python -m onegan_tf.evaluate --run_dir=RUN --metrics=segmentation,clustering,fid,is,cfid,cis \\
        --split=object --feature_net=inception_imagenet --num_generated=30000 --batch_size=50

What each metric needs of the dataset (masks, labels) and of the flags (num_generated) is checked before
the model, the classifier or any image is loaded, so a wrong combination fails in seconds.
"""

from __future__ import annotations

import math
import os
import sys
import time
import types
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags
from tqdm import tqdm

from onegan_tf import cli, data, tasks
from onegan_tf.checkpoint import CheckpointMismatchError, find_checkpoint, load_config, load_run
from onegan_tf.config import Config, ConfigError
from onegan_tf.data.sources import DataError
from onegan_tf.figures import save_png
from onegan_tf.files import write_json
from onegan_tf.metrics import feature_network, registry
from onegan_tf.model import OneGAN, sample_z

SPLITS = ("object", "test", "all", "background_images")
DEFAULT_METRICS = ("segmentation", "clustering", "fid", "is", "cfid", "cis")
FIGURE_IMAGES = 8


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not supported; allowed values: {SPLITS}")


class ModelEvalContext:
    """The `EvalContext` of `onegan_tf.metrics.registry` for a OneGAN model and an evaluation split.

    Real images stream from `data.eval_dataset` one batch at a time (`real_batches` is a generator over a
    tf.data pipeline: no split is ever held in memory); the model's calls are compiled once per shape with
    `tf.function`. `info` is `data.describe(cfg.data)` when the caller already has it.
    """

    def __init__(self, model: OneGAN, cfg: Config, split: str = "object", *, batch_size: int = 50,
                 num_generated: int = 0, feature_net: str = "inception_imagenet", seed: int = 0,
                 progress: bool = True, info: dict | None = None, segmenter=None):
        check_split(split)
        info = info or data.describe(cfg.data)
        self.model, self.cfg, self.split = model, cfg, split
        self.n_child, self.n_parent = model.cfg.n_child, model.cfg.n_parent
        self.has_masks, self.has_labels = bool(info["has_masks"]), bool(info["has_labels"])
        self.dataset_name = info["dataset"]
        self.n_images = int(info["n_images"][split])
        self.batch_size, self.num_generated, self.seed = int(batch_size), int(num_generated), int(seed)
        self.feature_net_spec, self.show_progress = feature_net, progress
        self._dataset, self._feature_net = None, None
        size = model.cfg.image_size
        images = tf.TensorSpec([None, size, size, 3], tf.float32)
        labels, seed_spec = tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int64)
        self._reconstruct = tf.function(lambda x: tasks.reconstruct(model, x), input_signature=[images])
        self._generate = tf.function(
            lambda c, s: tasks.generate(model, c, sample_z(tf.stack([s, 0]), tf.shape(c)[0], model.cfg.d_z)),
            input_signature=[labels, seed_spec])
        self._generate_like = tf.function(
            lambda x, s: tasks.generate_like(model, x, seed=s, shared_z=False), input_signature=[images, seed_spec])
        self.segment = None
        if segmenter is not None:
            segment = tf.function(lambda x: tasks.segment_distilled(segmenter, x), input_signature=[images])
            self.segment = lambda x: segment(tf.convert_to_tensor(x, tf.float32)).numpy()

    # -- EvalContext -------------------------------------------------------------------------------------
    def progress(self, iterable, description: str):
        total = len(iterable) if hasattr(iterable, "__len__") else math.ceil(self.n_images / self.batch_size)
        return tqdm(iterable, desc=description, total=total, unit="batch", disable=not self.show_progress,
                    file=sys.stderr, dynamic_ncols=True, mininterval=1.0)

    def real_batches(self):
        """A fresh generator over the split: {image, child, parent (with labels), mask [B, H, W] (with masks)}."""
        if self._dataset is None:
            self._dataset = data.eval_dataset(self.cfg.data, self.model.cfg.image_size, self.batch_size,
                                              self.split, classes=(self.n_child, self.n_parent))
        for batch in self._dataset.as_numpy_iterator():
            out = {"image": batch["image"]}
            if self.has_labels:
                out["child"], out["parent"] = batch["child"], batch["parent"]
            if self.has_masks:
                out["mask"] = batch["mask"][..., 0]
            yield out

    def reconstruct(self, images) -> dict:
        rec = self._reconstruct(tf.convert_to_tensor(images, tf.float32))
        return {"I_m": rec["I_m_hat"].numpy(), "I_hat": rec["I_hat"].numpy(),
                "e_c_logits": rec["e_c_hat"].numpy(), "e_p_logits": rec["e_p_hat"].numpy()}

    def generate(self, child, seed: int) -> dict:
        out = self._generate(tf.convert_to_tensor(np.asarray(child), tf.int32), tf.constant(seed, tf.int64))
        return {"I": out["I"].numpy()}

    def generate_like(self, images, seed: int) -> dict:
        out = self._generate_like(tf.convert_to_tensor(images, tf.float32), tf.constant(seed, tf.int64))
        return {"I": out["I"].numpy()}

    def feature_net(self):
        if self._feature_net is None:
            self._feature_net = feature_network(self.feature_net_spec, batch_size=self.batch_size)
        return self._feature_net


def check_requirements(names, info: dict, num_generated: int) -> None:
    """Raise registry.MetricError, before any heavy work, for a metric whose declared needs (masks, labels,
    generated images) the dataset of `info` or `num_generated` cannot serve."""
    data = types.SimpleNamespace(has_masks=bool(info["has_masks"]), has_labels=bool(info["has_labels"]),
                                 dataset_name=info["dataset"], num_generated=num_generated)
    registry.check(names, data, num_generated_name="--num_generated")


def evaluate(run_dir: str, metrics=DEFAULT_METRICS, *, split: str = "object", checkpoint: str | None = None,
             feature_net: str = "inception_imagenet", num_generated: int = 30000, batch_size: int = 50,
             out_dir: str | None = None, seed: int = 0, figures: bool = True, progress: bool = True,
             model: OneGAN | None = None, segmenter=None, weights: str | None = None) -> dict:
    """Evaluate a run; writes out_dir/report.json (default run_dir/eval) and the figure grids; returns the
    report: metrics, config, checkpoint and its step, split, number of images, feature net, wall time.

    model: an already loaded model for the run (e.g. at the end of training); the checkpoint is then only
    named in the report, not read. segmenter: its distilled segmenter, if any (`segmentation_distilled`).
    weights: the generator weights to load (ema, raw; None = the run's --generator_weights).
    """

    t0 = time.time()
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    names = registry.validate(metrics)
    check_split(split)
    cfg = load_config(run_dir)
    info = data.describe(cfg.data)
    check_requirements(names, info, num_generated)
    if info["n_images"][split] == 0:
        raise ValueError(f"split {split!r} of dataset {info['dataset']!r} has no images")
    if model is None:
        run = load_run(run_dir, checkpoint, weights)
        model, ckpt_path, step, segmenter, weights = run.model, run.checkpoint, run.step, run.segmenter, run.weights
    else:
        ckpt_path = find_checkpoint(run_dir, checkpoint) if os.path.isdir(os.path.join(run_dir, "ckpt")) else None
        step = None
    ctx = ModelEvalContext(model, cfg, split=split, batch_size=batch_size, num_generated=num_generated,
                           feature_net=feature_net, seed=seed, progress=progress, info=info, segmenter=segmenter)
    results = registry.compute(names, ctx)
    out_dir = out_dir or os.path.join(run_dir, "eval")
    written = _write_figures(ctx, out_dir, seed) if figures else {}
    net = ctx._feature_net
    report = {
        "metrics": _plain(results),
        "run_dir": run_dir, "checkpoint": ckpt_path, "step": step, "generator_weights": weights,
        "split": split, "dataset": info["dataset"],
        "n_images": ctx.n_images, "num_generated": num_generated, "batch_size": batch_size, "seed": seed,
        "feature_net": {"spec": feature_net, "used": net is not None,
                        "meaningful": None if net is None else bool(net.meaningful),
                        "description": None if net is None else repr(net)},
        "figures": written, "out_dir": out_dir, "wall_s": round(time.time() - t0, 2), "config": cfg.to_dict(),
    }

    write_json(os.path.join(out_dir, "report.json"), report)
    return report


def _write_figures(ctx: ModelEvalContext, out_dir: str, seed: int) -> dict:
    """The figure grids of the first evaluation batch as out_dir/<name>.png; returns name -> path."""
    first = next(ctx.real_batches())
    grids = tasks.figure_grids(ctx.model, first["image"][:FIGURE_IMAGES],
                               first["mask"][:FIGURE_IMAGES] if "mask" in first else None, seed=seed)
    return {name: save_png(os.path.join(out_dir, f"{name}.png"), grid) for name, grid in grids.items()}


def _plain(results: dict) -> dict:
    return {m: {k: (v.item() if hasattr(v, "item") else v) for k, v in d.items()} for m, d in results.items()}


def format_table(report: dict) -> str:
    """The metrics of a report as an aligned text table."""
    lines = [f"{report['run_dir']} step {report['step']} split={report['split']} "
             f"({report['n_images']} images), feature net {report['feature_net']['spec']}",
             f"{'metric':<14}{'key':<16}{'value':>14}"]
    for metric, values in report["metrics"].items():
        for key, value in values.items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            lines.append(f"{metric:<14}{key:<16}{shown:>14}")
    lines.append(f"wall time {report['wall_s']} s; report and figures in {report['out_dir']}")
    return "\n".join(lines)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run_dir", None, "Run directory written by `python -m onegan_tf.train`.", flag_values=fv)
    flags.DEFINE_string("checkpoint", "", "Checkpoint prefix to evaluate ('' = the latest of run_dir/ckpt).",
                        flag_values=fv)
    flags.DEFINE_enum("generator_weights", "", ["", "ema", "raw"], "Weights of V_* and G_*: ema (their moving "
                      "average), raw (the last iterate); '' = the run's --generator_weights.", flag_values=fv)
    flags.DEFINE_list("metrics", list(DEFAULT_METRICS), f"Metrics, comma-separated: {', '.join(DEFAULT_METRICS)}, "
                      "and segmentation_distilled (the distilled segmenter of a run trained with --distill_steps).",
                      flag_values=fv)
    flags.DEFINE_enum("split", "object", list(SPLITS), "Evaluation images: object (the 80 %), test (synthetic's "
                      "held-out set), all, background_images.", flag_values=fv)
    flags.DEFINE_string("feature_net", "inception_imagenet", "Classifier of FID/IS/CFID/CIS: inception_imagenet, "
                        "inception_random (tests only) or PATH.keras.", flag_values=fv)
    flags.DEFINE_integer("num_generated", 30000, "Images generated for FID and IS.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 50, "Batch size of the model and the classifier.", flag_values=fv)
    flags.DEFINE_string("out", "", "Output directory ('' = RUN/eval).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the generated classes and codes.", flag_values=fv)
    flags.DEFINE_boolean("figures", True, "Write the figure grids next to the report.", flag_values=fv)
    flags.DEFINE_boolean("progress", True, "Show progress bars.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m onegan_tf.evaluate --run_dir=RUN [--metrics=...]`: the report of a run; 2 on bad input."""
    F = cli.parse(argv, define_flags, required=["run_dir"],
                  usage="python -m onegan_tf.evaluate --run_dir=RUN [--metrics=segmentation,clustering,...] "
                  "[--split=object]")
    if F is None:
        return 2
    try:
        report = evaluate(F.run_dir, F.metrics, split=F.split, checkpoint=F.checkpoint or None,
                          feature_net=F.feature_net, num_generated=F.num_generated, batch_size=F.batch_size,
                          out_dir=F.out or None, seed=F.seed, figures=F.figures, progress=F.progress,
                          weights=F.generator_weights or None)
    except (registry.MetricError, CheckpointMismatchError, ConfigError, DataError, FileNotFoundError,
            ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
