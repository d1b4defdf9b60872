"""`python -m onegan_tf.train --flagfile=configs/cub.cfg`: train OneGAN by the multi-phase schedule (Sec. 4.3).

flags -> one Config -> strategy -> data streams -> `OneGANTrainer` -> the loop: one iteration per step,
the discriminator clones made on entering Phase II, scalars and figure grids to TensorBoard, a checkpoint
every `ckpt_every` steps. Running the same command again resumes from the last checkpoint of `run_dir`.

Run directory: config.json (the resolved config), ckpt/ (tf.train.CheckpointManager), tb/ (TensorBoard
events and profiles), samples/ (PNG grids), metrics.jsonl (every logged scalar), summary.json (at the end).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging
from tqdm import tqdm

from onegan_tf import cli, data, figures
from onegan_tf.checkpoint import STEP_KEY, find_checkpoint, has_checkpoint, load_config
from onegan_tf.config import DISTILLATION_SETTINGS, Config, ConfigError, config_differences, resumable_settings
from onegan_tf.data.protocol import resolve_from_data
from onegan_tf.distill import background_count, real_count
from onegan_tf.evaluate import check_requirements
from onegan_tf.files import save_keras, write_json
from onegan_tf.flags import config_from_flags, define_config_flags
from onegan_tf.machine import run_machine
from onegan_tf.metrics.registry import MetricError
from onegan_tf.model import OneGAN, sample_z
from onegan_tf.report import finalize_run
from onegan_tf.segmenter import build_segmenter
from onegan_tf.trainer import PHASES, OneGANTrainer, phase_at, step_noise, step_plan

GRID_COLUMNS = 8
# The distilled segmenter, written into the run directory when distillation ends.
SEGMENTER_FILE = "segmenter.keras"


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the terms."""


class IncompatibleRunError(RuntimeError):
    """run_dir holds a checkpoint of a run with other settings."""


# ---------------------------------------------------------------------------------------------- set-up


def make_strategy(tc):
    """default: one device; mirrored: all local GPUs (or --devices); multi_worker: from TF_CONFIG."""
    if tc.strategy == "default":
        return tf.distribute.get_strategy()
    if tc.strategy == "mirrored":
        devices = [d.strip() for d in tc.devices.split(",") if d.strip()] or None
        return tf.distribute.MirroredStrategy(devices)
    if "TF_CONFIG" not in os.environ:
        raise ConfigError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                          "(cluster and task of this worker)")
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def check_data(cfg: Config) -> dict:
    """Fail before any work when the data cannot feed this model; returns `data.describe`."""
    mc = cfg.model
    if cfg.data.dataset != "synthetic" and cfg.data.data_dir and not os.path.isdir(cfg.data.data_dir):
        raise ConfigError(f"--data_dir={cfg.data.data_dir!r} does not exist or is not a directory")
    info = data.describe(cfg.data)
    name = cfg.data.dataset
    children, parents = info["n_child"], info["n_parent"]
    if children and mc.n_child != children:
        raise ConfigError(f"--n_child={mc.n_child} but dataset {name!r} has {children} classes; "
                          f"set --n_child={children}")
    if parents and mc.n_parent < parents:  # more parent codes than classes are merged at evaluation (§7)
        raise ConfigError(f"--n_parent={mc.n_parent} but dataset {name!r} has {parents} classes; set "
                          f"--n_parent={parents} (or more parent codes, merged by shape at evaluation)")
    if parents and mc.n_parent > parents:
        logging.info("--n_parent=%d parent codes for the %d parent classes of dataset %r: the report also "
                     "scores them merged by shape into %d (docs/design.md §7)", mc.n_parent, parents, name, parents)
    check_final_eval(cfg, info)
    return info


def check_final_eval(cfg: Config, info: dict) -> None:
    """Refuse before training a --final_eval the data cannot serve (an unlabelled or mask-free set)."""

    tc = cfg.train
    metrics = [m.strip() for m in tc.final_eval.split(",") if m.strip()]
    try:
        check_requirements(metrics, info, tc.final_num_generated)
    except MetricError as e:
        raise ConfigError(f"--final_eval={tc.final_eval}: {e}") from None
    generative = [m for m in metrics if m in ("fid", "is", "cfid", "cis")]
    if generative and tc.final_feature_net == "finetuned" and not info["has_labels"]:
        raise ConfigError(f"--final_eval={tc.final_eval} with --final_feature_net=finetuned fine-tunes a "
                          f"classifier on child labels, and dataset {info['dataset']!r} has none: pass "
                          f"--final_feature_net=inception_imagenet (or a .keras classifier)")


def check_resumable(cfg: Config, run_dir: str) -> None:
    """Refuse to resume a checkpoint written with other settings, naming each difference."""
    path = os.path.join(run_dir, "config.json")
    if not has_checkpoint(run_dir):
        return
    if not os.path.exists(path):
        raise IncompatibleRunError(f"{run_dir} holds a checkpoint but no config.json; cannot check it matches")
    with open(path) as f:
        saved = json.load(f)
    diffs = config_differences(saved, cfg.to_dict(), resumable_settings())
    if diffs:
        raise IncompatibleRunError(
            f"run_dir={run_dir} holds a checkpoint of a run with other settings; refusing to resume. "
            "Differences:\n  " + "\n  ".join(diffs) + "\nUse another --run_dir or the original settings.")


def check_distillable(cfg: Config) -> str | None:
    """With --distill_from, that run's latest checkpoint, once it is known to hold the finished schedule of this
    run's settings (all but the distillation's may not differ); None without it or once run_dir has a
    checkpoint of its own (it then resumes)."""
    tc = cfg.train
    if not tc.distill_from or has_checkpoint(tc.run_dir):
        return None
    source = tc.distill_from
    try:
        path = find_checkpoint(source)
        saved = load_config(source)
    except FileNotFoundError as e:
        raise IncompatibleRunError(f"--distill_from={source}: {e}") from None
    diffs = config_differences(saved.to_dict(), cfg.to_dict(), resumable_settings() + DISTILLATION_SETTINGS)
    if diffs:
        raise IncompatibleRunError(
            f"--distill_from={source} was trained with other settings than this run's; only the distillation's "
            "may differ. Differences:\n  " + "\n  ".join(diffs))
    step = int(tf.train.load_variable(path, STEP_KEY))
    if step != tc.steps:
        raise IncompatibleRunError(f"--distill_from={source}: its checkpoint {path} is at step {step}, not at "
                                   f"the end of the schedule ({tc.steps} steps); finish training it first")
    return path


def dry_run(cfg: Config, out=None) -> dict:
    """Resolved config, per-network parameter counts and the step plan, printed to `out` (None: the current
    sys.stdout, looked up at the call so that a redirection applies); nothing trained (the data is read only
    for settings given as `auto`)."""
    out = sys.stdout if out is None else out
    cfg, estimates = resolve_from_data(cfg)
    for line in estimates:
        print(f"Estimated from the data: {line}", file=out)
    counts = OneGAN(cfg.model).parameter_counts()
    plan = step_plan(cfg.train)
    print("Resolved config:", cfg.to_json(), sep="\n", file=out)
    print("\nParameters per sub-network:", file=out)
    for name, n in counts.items():
        print(f"  {name:<6} {n:>14,}", file=out)
    print(f"  {'total':<6} {sum(counts.values()):>14,}", file=out)
    tc = cfg.train
    segmenter = build_segmenter(cfg.model, tc.distill_width).count_params() if tc.distill_steps else None
    if segmenter:
        print(f"  and the distilled segmenter {segmenter:,}", file=out)
    print("\nStep plan:", file=out)
    for row in plan:
        print(f"  Phase {row['phase']:<4} steps {row['first']:>8,} .. {row['last']:>8,} "
              f"({row['steps']:,} steps): {row['paths']}", file=out)
    if segmenter:
        real = f", {real_count(tc)} real images a batch with the encoders' masks" if real_count(tc) else ""
        real += f", {background_count(tc)} pairs a batch on real backgrounds" if background_count(tc) else ""
        print(f"  then {tc.distill_steps:,} distillation steps: the segmenter on generated (I, I_m), "
              f"{tc.generator_weights} generator weights, {tc.distill_target} targets{real}", file=out)
        if tc.distill_from:
            print(f"  (only these: the schedule's networks come from --distill_from={tc.distill_from})", file=out)
    return {"parameters": counts, "plan": plan, "segmenter_parameters": segmenter}


# ---------------------------------------------------------------------------------------------- the loop


def check_batch_split(tc, replicas: int) -> None:
    """The global batch must split evenly over the replicas, and into pairs within each for L_MS."""
    if tc.batch_size % replicas:
        raise ConfigError(f"--batch_size={tc.batch_size} is not divisible by the {replicas} replicas of "
                          f"--strategy={tc.strategy}")
    if tc.weight_MS and (tc.batch_size // replicas) % 2:
        raise ConfigError(f"--weight_MS pairs samples within a replica: the per-replica batch "
                          f"{tc.batch_size // replicas} must be even")


def train(cfg: Config) -> dict:
    """Train (or resume) the run of `cfg`; returns the summary also written to run_dir/summary.json.

    Set-up (strategy, checks, restore), inputs, the schedule's loop, the distillation steps, the summary.
    """
    run_dir = cfg.train.run_dir
    strategy = make_strategy(cfg.train)
    replicas = strategy.num_replicas_in_sync
    check_batch_split(cfg.train, replicas)
    info = check_data(cfg)
    cfg, estimates = resolve_from_data(cfg)
    tc = cfg.train
    for line in estimates:
        logging.info("Estimated from the data: %s", line)
    check_resumable(cfg, run_dir)
    distilled_from = check_distillable(cfg)
    chief = is_chief(strategy)
    trainer, manager = _restore(cfg, strategy, chief, distilled_from)
    start = int(trainer.step.numpy())
    if chief:
        write_json(os.path.join(run_dir, "config.json"), cfg.to_dict())
    if start >= tc.steps and not distilled_from:
        logging.info("Run %s already finished (%d steps)", run_dir, start)

    batches = _train_batches(cfg, strategy, start)
    writer = tf.summary.create_file_writer(os.path.join(run_dir, "tb")) if chief else tf.summary.create_noop_writer()
    grid_inputs = _grid_inputs(cfg, data) if chief else None
    t0 = time.time()
    values, images_per_s = _run_schedule(cfg, trainer, manager, batches, start, writer, grid_inputs, chief)
    if tc.distill_steps:
        values = {**values, **_distill(cfg, trainer, manager, writer, chief)}

    end_step = int(trainer.step.numpy())
    summary = {"run_dir": run_dir, "start_step": start, "end_step": end_step, "steps_run": end_step - start,
               "phase": phase_at(max(end_step - 1, 0), tc), "wall_s": round(time.time() - t0, 1),
               "final_losses": values, "images_per_s": images_per_s, "replicas": replicas,
               "traces": trainer.tracing_counts(),
               "checkpoint": manager.latest_checkpoint, "data": {k: info[k] for k in ("dataset", "n_images")}}
    if distilled_from:
        summary["distilled_from"] = distilled_from
    if chief:
        _finish(cfg, trainer, end_step, summary)
    return summary


def _restore(cfg: Config, strategy, chief: bool, distill_from: str | None = None):
    """The trainer and its checkpoint manager, resumed from run_dir/ckpt when it holds a checkpoint, else
    started from the checkpoint `distill_from` of a trained run (`check_distillable`) when given."""
    tc = cfg.train
    if tc.mixed_precision != "off":
        keras.mixed_precision.set_dtype_policy(tc.mixed_precision)
    # The initial weights are part of "the same seed gives the same run" (and of resuming it exactly).
    keras.utils.set_random_seed(tc.seed)
    trainer = OneGANTrainer(cfg, strategy)
    ckpt = tf.train.Checkpoint(trainer=trainer)
    ckpt_dir = os.path.join(tc.run_dir, "ckpt") if chief else tempfile.mkdtemp(prefix="onegan-worker-ckpt-")
    manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=tc.keep_checkpoints)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d", manager.latest_checkpoint, int(trainer.step.numpy()))
    elif distill_from:
        _start_from_trained(cfg, trainer, distill_from)
    return trainer, manager


def _start_from_trained(cfg: Config, trainer, path: str) -> None:
    """--distill_from: restore everything but the distiller (model, EMA, optimisers, step) from `path`."""
    # Through a skeleton of the trainer without its distiller: the segmenter stays as built from this run's
    # seed (a re-distillation starts where a full run's would), and no restoration of the source's distiller
    # is left deferred on the trainer itself.
    children = tf.train.TrackableView(trainer).children(trainer)
    skeleton = tf.train.Checkpoint(**{name: child for name, child in children.items() if name != "distiller"})
    tf.train.Checkpoint(trainer=skeleton).restore(path).expect_partial().assert_existing_objects_matched()
    logging.info("Distilling from %s (step %d)", path, cfg.train.steps)


def _train_batches(cfg: Config, strategy, start: int):
    """X_c, X_bg and every random draw of the step, one global batch per step from `start`, split over
    the replicas."""
    tc = cfg.train
    x_c, x_bg = data.train_streams(cfg.data, cfg.model.image_size, tc.batch_size, tc.seed, start)
    noise = tf.data.Dataset.range(start, max(start, tc.steps)).map(
        lambda s: step_noise(tc.seed, s, tc.batch_size, cfg))
    batches = tf.data.Dataset.zip((x_c, x_bg, noise)).map(lambda a, b, n: {"x_c": a, "x_bg": b, **n})
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(batches.with_options(options))


def _run_schedule(cfg: Config, trainer, manager, batches, start: int, writer, grid_inputs, chief: bool):
    """One iteration per step to --steps: the clones made on entering Phase II, the profiler window,
    scalars every log_every steps, grids every image_every, a checkpoint every ckpt_every. Returns the last
    logged losses and images per second."""
    tc, run_dir = cfg.train, cfg.train.run_dir
    profile = tc.profile_range
    progress = _progress(tc, start, chief)
    last_log_time, last_log_step, values, images_per_s = time.time(), start, {}, 0.0
    for step, batch in zip(range(start, tc.steps), batches):
        phase = phase_at(step, tc)
        if phase != "I" and not bool(trainer.clones_ready.numpy()):
            trainer.init_clones()
            logging.info("Step %d: entering Phase %s, discriminators cloned for the reconstruction paths",
                         step, phase)
        if profile and step == profile[0]:
            tf.profiler.experimental.start(os.path.join(run_dir, "tb"))
        out = trainer.train_step(batch, phase)
        if profile and step == profile[1] - 1:
            tf.profiler.experimental.stop()
        done = step + 1
        progress.update(1)
        last = done == tc.steps
        if done % tc.log_every == 0 or last or done % tc.ckpt_every == 0:
            values = {k: float(v) for k, v in out.items()}
            _raise_if_not_finite(trainer, values, manager)
            now = time.time()
            steps_per_s = (done - last_log_step) / max(now - last_log_time, 1e-9)
            images_per_s = steps_per_s * tc.batch_size
            last_log_time, last_log_step = now, done
            scalars = {**{f"loss/{k}": v for k, v in values.items()}, "schedule/phase": PHASES.index(phase),
                       "schedule/learning_rate": float(np.asarray(trainer.opt_G.learning_rate)),
                       "speed/steps_per_s": steps_per_s, "speed/images_per_s": images_per_s}
            if chief:
                _log_scalars(writer, run_dir, done, phase, scalars)
            progress.set_postfix_str(_postfix(phase, values, images_per_s))
        if chief and (done % tc.image_every == 0 or last):
            _log_grids(writer, run_dir, done, trainer.generation_model, grid_inputs, figures)
        if done % tc.ckpt_every == 0 or last:
            manager.save(checkpoint_number=done)
    progress.close()
    return values, images_per_s


def _finish(cfg: Config, trainer, end_step: int, summary: dict) -> None:
    """The chief's end of a run: summary.json, the summary printed, then the final evaluation and export."""
    tc = cfg.train
    # The wall time means something only beside the speed of this machine right now (docs/design.md §7).
    summary["machine"] = run_machine()
    write_json(os.path.join(tc.run_dir, "summary.json"), summary)
    print(_summary_text(summary), flush=True)
    if tc.final_eval or tc.final_export:
        final = finalize_run(cfg, trainer.generation_model, end_step,
                             raw_model=trainer.model if tc.generator_weights == "ema" else None,
                             segmenter=trainer.distiller.shipped_segmenter() if tc.distill_steps else None)
        summary["report"] = os.path.join(tc.run_dir, "report.md")
        print(f"  report: {summary['report']} (final evaluation and export: {final['wall_s']} s)", flush=True)


def _distill(cfg: Config, trainer, manager, writer, chief) -> dict:
    """The distillation steps after the schedule (onegan_tf.distill), resumed where the checkpoint left them;
    then the segmenter's .keras file. Steps are numbered after the schedule's in TensorBoard and ckpt/."""
    tc, run_dir = cfg.train, cfg.train.run_dir
    distiller, model = trainer.distiller, trainer.generation_model
    start = int(distiller.step.numpy())
    # Real images for --distill_real (X_c) and --distill_real_backgrounds (X_bg): streams of their own batch
    # sizes, resumed at the distillation step.
    n_real, n_bg = real_count(tc), background_count(tc)
    real = iter(data.train_streams(cfg.data, cfg.model.image_size, n_real, tc.seed, start)[0]) if n_real else None
    backgrounds = iter(data.train_streams(cfg.data, cfg.model.image_size, n_bg, tc.seed, start)[1]) if n_bg else None
    progress = tqdm(total=tc.distill_steps, initial=start, desc="distill", unit="step", dynamic_ncols=True,
                    disable=not (tc.progress and chief), file=sys.stderr, mininterval=1.0)
    values, last_time, last_step = {}, time.time(), start
    for done in range(start + 1, tc.distill_steps + 1):
        out = distiller.train_step(model, None if real is None else next(real),
                                   None if backgrounds is None else next(backgrounds))
        progress.update(1)
        last = done == tc.distill_steps
        if done % tc.log_every == 0 or last or done % tc.ckpt_every == 0:
            values = {k: float(v) for k, v in out.items()}
            if not all(np.isfinite(v) for v in values.values()):
                raise NonFiniteLossError(f"distillation step {done}: non-finite {values}. Training stopped; the "
                                         f"last good checkpoint is kept: {manager.latest_checkpoint}")
            now = time.time()
            speed = (done - last_step) / max(now - last_time, 1e-9)
            last_time, last_step = now, done
            if chief:
                _log_scalars(writer, run_dir, tc.steps + done, "distill",
                             {**values, "speed/distill_images_per_s": speed * tc.batch_size})
            progress.set_postfix_str(" ".join(f"{k.split('/')[-1]}={v:.3g}" for k, v in values.items()))
        if done % tc.ckpt_every == 0 or last:
            manager.save(checkpoint_number=tc.steps + done)
    progress.close()
    if chief:
        save_keras(distiller.shipped_segmenter(), os.path.join(run_dir, SEGMENTER_FILE))
    return values


def _raise_if_not_finite(trainer, values, manager):
    bad_step = int(trainer.bad_step.numpy())
    bad = sorted(k for k, v in values.items() if not np.isfinite(v))
    if bad_step >= 0 or bad:
        raise NonFiniteLossError(
            f"a loss became NaN or infinite at step {bad_step if bad_step >= 0 else int(trainer.step.numpy()) - 1}"
            f"; non-finite terms now: {', '.join(bad) or '(recovered since)'}. Training stopped; the last good "
            f"checkpoint is kept: {manager.latest_checkpoint or 'none was written yet'}")


def _grid_inputs(cfg: Config, data):
    """Fixed codes and real images for the figure grids, the same at every logging step."""
    mc = cfg.model
    n = min(GRID_COLUMNS, mc.n_child)
    child = tf.constant(np.linspace(0, mc.n_child - 1, n).round().astype(np.int32))
    z = sample_z(tf.constant([cfg.train.seed, -1], tf.int64), n, mc.d_z)
    real = next(iter(data.eval_dataset(cfg.data, mc.image_size, GRID_COLUMNS, "object")))
    return {"child": child, "z": z, "real": real}


def _log_grids(writer, run_dir, step, model, inputs, figures):
    gen = {k: v.numpy() for k, v in model.generate(inputs["child"], inputs["z"]).items()}
    rec = {k: v.numpy() for k, v in model.reconstruct(inputs["real"]["image"]).items()}
    grids = {"generation": figures.generation_figure(gen),
             "reconstruction": figures.reconstruction_figure(inputs["real"]["image"].numpy(), rec,
                                                             inputs["real"].get("mask"))}
    with writer.as_default(step=step):
        for name, grid in grids.items():
            tf.summary.image(f"figures/{name}", grid[None], step=step)
            figures.save_png(os.path.join(run_dir, "samples", f"{name}_{step:08d}.png"), grid)
    writer.flush()


def _log_scalars(writer, run_dir, step, phase, scalars):
    with writer.as_default(step=step):
        for k, v in scalars.items():
            tf.summary.scalar(k, v, step=step)
    writer.flush()
    with open(os.path.join(run_dir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": step, "phase": phase, **scalars}, sort_keys=True) + "\n")


def _progress(tc, start, chief):
    return tqdm(total=tc.steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
                disable=not (tc.progress and chief), file=sys.stderr, mininterval=1.0)


def _postfix(phase, values, images_per_s):
    keys = [k for k in ("D_gen/L_D", "total/L_GEN", "total/L_AE", "gen/L_RM") if k in values]
    shown = " ".join(f"{k.split('/')[-1]}={values[k]:.3g}" for k in keys)
    return f"phase={phase} {shown} img/s={images_per_s:.1f}"


def _summary_text(s):
    lines = [f"Finished {s['run_dir']}: steps {s['start_step']} -> {s['end_step']} (phase {s['phase']}) in "
             f"{s['wall_s']} s, {s['images_per_s']:.1f} images/s on {s['replicas']} replica(s)",
             f"  machine: {s['machine']['cpu_model']}, {s['machine']['sched_cpus']} CPUs, load "
             f"{s['machine']['loadavg'][0]:.2f}; ceiling convolution "
             f"{s['machine']['ceiling_conv_gflop_per_s']} GFLOP/s",
             f"  checkpoint: {s['checkpoint']}",
             f"  TensorBoard: tensorboard --logdir {os.path.join(s['run_dir'], 'tb')}"]
    for k in sorted(s["final_losses"]):
        lines.append(f"  {k:<24} {s['final_losses'][k]:.4f}")
    return "\n".join(lines)


def define_flags(fv: flags.FlagValues) -> None:
    """Every config field as a flag (`onegan_tf.flags`), and --dry_run."""
    define_config_flags(fv)
    flags.DEFINE_boolean("dry_run", False, "Print the resolved config, the parameter count of every sub-network "
                         "and the per-phase step plan, then exit without training.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m onegan_tf.train [--flagfile=configs/cub.cfg] [--FIELD=VALUE ...]`; 2 on a bad setting."""
    fv = cli.parse(argv, define_flags, usage="python -m onegan_tf.train --flagfile=configs/cub.cfg [--FIELD=VALUE ...]")
    if fv is None:
        return 2
    try:
        cfg = config_from_flags(fv)
        if fv.dry_run:
            dry_run(cfg)
            return 0
        train(cfg)
    except (ConfigError, IncompatibleRunError, NonFiniteLossError) as e:
        logging.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
