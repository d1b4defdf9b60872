"""Load a trained OneGAN from a run directory (the layout `onegan_tf.train` writes).

A run directory holds `config.json` (the resolved `Config`) and `ckpt/` (a `tf.train.CheckpointManager` of
`tf.train.Checkpoint(trainer=OneGANTrainer)`). Inference and evaluation need only the model, so `load_run`
rebuilds `OneGAN(config.model)` and restores it through a skeleton of the same object graph,
`Checkpoint(trainer=Checkpoint(model=model, step=step))`: the trainer tracks the model as `model` and its
step counter as `step`; the optimisers and discriminator clones stay in the file, unread.

Every layer of every network is a named attribute (networks.py never hides layers in plain lists), so the
skeleton reaches every model variable; `test_checkpoint_graph_reaches_every_model_variable`
(tests/test_serialization.py) keeps it that way.

Generator weights: the trainer also holds the moving average of V_* and G_* (`trainer/ema`,
`onegan_tf.ema`); with `weights="ema"` (the run's `--generator_weights`, the default) `load_run` restores
those into the model's V_* and G_* after the raw weights, so every task, metric and export sees the average.
A run trained with distillation also holds the segmenter (`trainer/distiller`, `onegan_tf.distill`);
`load_run` restores it when the checkpoint has taken at least one distillation step.

A checkpoint written with another model configuration (other sizes, classes, widths) does not fit the
rebuilt networks; `load_run` then raises `CheckpointMismatchError` naming both files.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf

from onegan_tf.config import GENERATOR_WEIGHTS, Config, ConfigError
from onegan_tf.ema import AVERAGED
from onegan_tf.model import OneGAN
from onegan_tf.segmenter import build_segmenter, flip_averaged

# The step counters of the trainer and of its distiller, as a run's checkpoints name them.
STEP_KEY = "trainer/step/.ATTRIBUTES/VARIABLE_VALUE"
DISTILL_STEP_KEY = "trainer/distiller/step/.ATTRIBUTES/VARIABLE_VALUE"


class CheckpointMismatchError(RuntimeError):
    """The checkpoint does not hold the model that the run's config.json describes (or is missing)."""


@dataclasses.dataclass
class LoadedRun:
    """A restored model with where it came from."""

    model: OneGAN
    config: Config
    run_dir: str
    checkpoint: str
    step: int
    weights: str = "raw"
    segmenter: keras.Model | None = None


def load_config(run_dir: str) -> Config:
    """The `Config` of a run directory, from its config.json."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: --run_dir must be a directory written by "
                                "`python -m onegan_tf.train` (config.json + ckpt/)")
    with open(path) as f:
        try:
            return Config.from_dict(json.load(f))
        except (json.JSONDecodeError, TypeError, ConfigError) as e:
            raise ConfigError(f"{path} is not a valid onegan_tf config: {e}") from e


def has_checkpoint(run_dir: str) -> bool:
    """Whether run_dir/ckpt holds a checkpoint index (a run to resume)."""
    return os.path.exists(os.path.join(run_dir, "ckpt", "checkpoint"))


def find_checkpoint(run_dir: str, checkpoint: str | None = None) -> str:
    """The checkpoint prefix to restore: `checkpoint` if given (a prefix such as run/ckpt/ckpt-6, or a
    directory holding a `checkpoint` index), else the latest one of run_dir/ckpt."""
    where = checkpoint or os.path.join(run_dir, "ckpt")
    if os.path.isdir(where):
        latest = tf.train.latest_checkpoint(where)
        if latest is None:
            raise FileNotFoundError(f"no checkpoint in {where} (train first, or pass --checkpoint=PREFIX)")
        return latest
    if not tf.io.gfile.exists(f"{where}.index"):
        raise FileNotFoundError(f"checkpoint {where!r} not found: expected the files {where}.index and "
                                f"{where}.data-*; give a prefix such as {os.path.join(run_dir, 'ckpt', 'ckpt-1')}")
    return where


def restore_model(model: OneGAN, path: str) -> int:
    """Restore `model`'s weights from a trainer checkpoint at `path`; returns the checkpoint's step.

    Raises CheckpointMismatchError when a weight is missing from the file or has another shape.
    """
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    skeleton = tf.train.Checkpoint(trainer=tf.train.Checkpoint(model=model, step=step))
    try:
        skeleton.restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        raise CheckpointMismatchError(_first_lines(e)) from e
    return int(step.numpy())


def restore_ema(model: OneGAN, path: str) -> None:
    """Overwrite `model`'s V_* and G_* with the trainer's moving average of them (`trainer/ema`) at `path`."""
    ema = tf.train.Checkpoint(**{key: getattr(model, key) for key in AVERAGED})
    try:
        tf.train.Checkpoint(trainer=tf.train.Checkpoint(ema=ema)).restore(path).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        raise CheckpointMismatchError(_first_lines(e)) from e


def restore_segmenter(cfg: Config, path: str) -> keras.Model | None:
    """The distilled segmenter of the trainer checkpoint at `path` (flip-averaged with `distill_flip_average`);
    None when it took no distillation step."""
    names = dict(tf.train.list_variables(path))
    if DISTILL_STEP_KEY not in names or int(tf.train.load_variable(path, DISTILL_STEP_KEY)) < 1:
        return None
    segmenter = build_segmenter(cfg.model, cfg.train.distill_width)
    skeleton = tf.train.Checkpoint(trainer=tf.train.Checkpoint(distiller=tf.train.Checkpoint(segmenter=segmenter)))
    try:
        skeleton.restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        raise CheckpointMismatchError(f"segmenter of {path}: {_first_lines(e)}") from e
    return flip_averaged(segmenter) if cfg.train.distill_flip_average else segmenter


def has_ema(path: str) -> bool:
    """Whether the trainer checkpoint at `path` holds the generators' moving average."""
    return any(name.startswith("trainer/ema/") for name, _ in tf.train.list_variables(path))


def load_run(run_dir: str, checkpoint: str | None = None, weights: str | None = None) -> LoadedRun:
    """Read run_dir/config.json, build OneGAN and restore it from the latest (or the given) checkpoint.

    weights: "ema" (V_*, G_* from the moving average), "raw" (the last iterate) or None (the run's
    --generator_weights; a run whose checkpoint holds no average falls back to raw).
    """
    cfg = load_config(run_dir)
    path = find_checkpoint(run_dir, checkpoint)
    if weights not in (None,) + GENERATOR_WEIGHTS:
        raise ConfigError(f"weights={weights!r} is not supported; allowed values: {GENERATOR_WEIGHTS}")
    ema_saved = has_ema(path)
    if weights == "ema" and not ema_saved:
        raise CheckpointMismatchError(f"checkpoint {path} holds no EMA of the generators (the run was trained "
                                      "with --ema_kimg=0 or before EMA existed); use --generator_weights=raw")
    weights = weights or (cfg.train.generator_weights if ema_saved else "raw")
    model = OneGAN(cfg.model)
    try:
        step = restore_model(model, path)
        if weights == "ema":
            restore_ema(model, path)
        segmenter = restore_segmenter(cfg, path)
    except CheckpointMismatchError as e:
        raise CheckpointMismatchError(
            f"checkpoint {path} does not match the model of {os.path.join(run_dir, 'config.json')} "
            f"(image_size={cfg.model.image_size}, channel_mult={cfg.model.channel_mult}, "
            f"n_child={cfg.model.n_child}, n_parent={cfg.model.n_parent}): was it written by another run "
            f"or was config.json edited? Restore error: {e}") from None
    return LoadedRun(model=model, config=cfg, run_dir=run_dir, checkpoint=path, step=step, weights=weights,
                     segmenter=segmenter)


def _first_lines(e: Exception, n: int = 3) -> str:
    return " ".join(str(e).strip().splitlines()[:n])
