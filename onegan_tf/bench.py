"""`python -m onegan_tf.bench`: how fast one configuration trains and serves on this machine.

    python -m onegan_tf.bench --image_size=32 --channel_mult=0.25 --batch_size=20 --steps=5 \\
        --what=train,flops,data,serving --out=bench.jsonl

Every training flag is a flag here too (`--image_size`, `--channel_mult`, `--batch_size`,
`--mixed_precision`, `--jit_compile`, the data flags, ...), so a run's flag file works here
(`--flagfile=configs/demo.cfg`); `--mask_target=auto` is estimated from the data as training does, and the
estimate is printed. `--what` picks the measurements:

- `train`    seconds per training step and images/s of each phase in `--phases`, the median of `--steps`
             steps after `--warmup` steps (the first traces the phase's tf.function); every step is synced
             by fetching its total loss. The inputs are fixed random images and this step's `step_noise`,
             so the data pipeline is not timed here. Also: traces of the phase's step function, host memory
             (resident now and process peak), device memory on a GPU.
- `flops`    model FLOPs of one training step of each phase (`onegan_tf.flops`), the achieved FLOP/s
             when `train` ran too, and the FLOP/s of one large convolution timed the same way
             (`--ceiling`, the practical ceiling of this device).
- `data`     images/s of the X_c and X_bg `tf.data` pipelines, each timed alone over `--bench_batches`
             batches after `--bench_warmup` (with the seconds to index the dataset).
- `serving`  latency p50/p95 and images/s of `serving_default` (PNG bytes in) of a freshly exported
             SavedModel, beside the same signature called in-process, at each batch of `--serving_batches`.
- `networks` forward seconds and FLOP/s of each network alone at the training batch (where a step's
             time goes).
- `ops`      the op types, and the networks (top name scope; `grad` = their backward), that take the
             most time in one step of the last phase of `--phases` (TF profiler trace, op events summed;
             with intra-op threads the sum can exceed the step's wall time).

One JSON line per measurement goes to `--out` (appended), each with the config (batch, precision, L_RM's
target and every model setting, so that runs of other flags tell apart), the machine (platform,
CPUs, CPU model, TF version, devices) and the load average when it was taken; a table goes to stdout.
Timings on a shared machine are inflated by its load: compare numbers only at a similar load average.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from typing import Sequence

import keras
import tensorflow as tf
from absl import flags
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from onegan_tf import cli, export, flops
from onegan_tf.data.pipeline import describe, train_streams
from onegan_tf.data.protocol import resolve_from_data
from onegan_tf.flags import config_from_flags, define_config_flags
from onegan_tf.machine import BENCH_CEILING, ceiling_conv, machine_info, timed
from onegan_tf.model import OneGAN
from onegan_tf.networks import network_inputs
from onegan_tf.trainer import PHASES, OneGANTrainer, step_noise

WHAT = ("train", "flops", "data", "serving", "networks", "ops")


def define_flags(fv: flags.FlagValues) -> None:
    """The bench's flags and every training flag."""
    flags.DEFINE_integer("bench_batches", 50, "Batches timed per stream by --what=data, after the warm-up.",
                         flag_values=fv)
    flags.DEFINE_integer("bench_warmup", 5, "Batches pulled per stream before timing (fills the prefetch "
                         "buffers and lets AUTOTUNE settle).", flag_values=fv)
    flags.DEFINE_list("phases", list(PHASES), f"Phases to time: {', '.join(PHASES)}.", flag_values=fv)
    flags.DEFINE_integer("steps", 5, "Timed steps (or calls) per measurement, after the warm-up.", flag_values=fv)
    flags.DEFINE_integer("warmup", 2, "Untimed steps (or calls) first; the first one traces.", flag_values=fv)
    flags.DEFINE_string("out", "", "Append one JSON line per measurement to this file ('' = table only).",
                        flag_values=fv)
    flags.DEFINE_list("what", ["train", "flops", "data", "serving"], f"Measurements, any of {WHAT}.", flag_values=fv)
    flags.DEFINE_list("serving_batches", ["1", "32"], "Batch sizes of the serving measurement.", flag_values=fv)
    flags.DEFINE_list("ceiling", [str(v) for v in BENCH_CEILING],
                      "The ceiling convolution: batch, size, c_in, c_out, kernel ('same', stride 1).", flag_values=fv)
    define_config_flags(fv)


# ---------------------------------------------------------------------------------------------- machine


def memory_info() -> dict:
    """Host memory in MiB: resident now and the process' peak so far (ru_maxrss); GPU:0 current and peak."""
    import psutil

    out = {"host_rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
           "host_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, 1)}
    if tf.config.list_physical_devices("GPU"):
        mem = tf.config.experimental.get_memory_info("GPU:0")
        out.update(device_mib=round(mem["current"] / 2**20, 1), device_peak_mib=round(mem["peak"] / 2**20, 1))
    return out


def _reset_device_peak():
    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


def percentile(values, q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between order statistics."""
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


# ------------------------------------------------------------------------------------------ measurements


def _train_batches(cfg, n: int) -> list[dict]:
    """`n` global batches: fixed random X_c, X_bg in [-1, 1] and each step's own `step_noise`."""

    b, s = cfg.train.batch_size, cfg.model.image_size
    gen = tf.random.Generator.from_seed(cfg.train.seed)
    real = {k: gen.uniform((b, s, s, 3), -1.0, 1.0) for k in ("x_c", "x_bg")}
    return [{**real, **step_noise(cfg.train.seed, step, b, cfg)} for step in range(n)]


def _total(out: dict):
    return out["total/L_AE"] if "total/L_AE" in out else out["total/L_GEN"]


def bench_train(trainer, cfg, phases, steps: int, warmup: int) -> list[dict]:
    """Seconds per step of each phase (median after warm-up), images/s, traces and memory."""
    batches = _train_batches(cfg, warmup + steps)
    records = []
    for phase in phases:
        if phase != "I" and not bool(trainer.clones_ready.numpy()):
            trainer.init_clones()
        _reset_device_peak()
        feed = iter(batches * 2)

        def step():
            float(_total(trainer.train_step(next(feed), phase)))

        start = time.perf_counter()
        step()  # traces
        first = time.perf_counter() - start
        seconds = timed(step, steps, max(warmup - 1, 0))
        median = statistics.median(seconds)
        records.append({
            "what": "train", "name": f"phase {phase}", "phase": phase,
            "seconds_per_step": median, "images_per_s": cfg.train.batch_size / median,
            "step_seconds": seconds, "first_step_seconds": first,
            "traces": trainer.tracing_counts()[phase],
            **memory_info()})
    return records


def bench_flops(trainer, cfg, phases, train_records, ceiling, steps: int, warmup: int) -> list[dict]:
    """FLOPs of one step of each phase, achieved FLOP/s where the step was timed, and the ceiling conv."""
    seconds = {r["phase"]: r["seconds_per_step"] for r in train_records}
    records = [{"what": "flops", "name": "networks", "forward_flops_per_sample":
                flops.network_table(trainer.model)}]
    for phase in phases:
        f = flops.step_flops(trainer.model, cfg.train, phase, cfg.train.batch_size)
        rec = {"what": "flops", "name": f"phase {phase}", "phase": phase,
               "forward_flops": f["forward"], "training_flops": f["training"],
               "training_flops_by_network": f["by_network"], "training_flops_by_call": f["by_call"]}
        if phase in seconds:
            rec["seconds_per_step"] = seconds[phase]
            rec["flop_per_s"] = f["training"] / seconds[phase]
        records.append(rec)
    records.append(ceiling_conv(*ceiling, steps=steps, warmup=warmup))
    return records


def bench_networks(model, cfg, steps: int, warmup: int) -> list[dict]:
    """Forward seconds of each network alone at the training batch, with its FLOP/s."""

    b = cfg.train.batch_size
    records = []
    for name, net in model.networks.items():
        x = network_inputs(name, cfg.model, batch=b)
        fn = tf.function(lambda x, net=net: tf.nest.map_structure(
            lambda t: tf.reduce_sum(tf.cast(t, tf.float32)), net(x, training=True)))
        seconds = timed(lambda: tf.nest.map_structure(float, fn(x)), steps, max(warmup, 1))
        median = statistics.median(seconds)
        f = flops.network_flops(net) * b
        records.append({"what": "networks", "name": name, "forward_flops": f, "seconds_per_step": median,
                        "step_seconds": seconds, "flop_per_s": f / median})
    return records


def bench_data(cfg, warmup: int, batches: int) -> list[dict]:
    """images/s of the X_c and X_bg pipelines, each timed alone, and the seconds to index the dataset."""
    start = time.perf_counter()
    info = describe(cfg.data)
    index_s = time.perf_counter() - start
    x_c, x_bg = train_streams(cfg.data, cfg.model.image_size, cfg.train.batch_size, cfg.train.seed)
    return [{"what": "data", "name": name, "dataset": cfg.data.dataset, "batches": batches,
             "data_cache": cfg.data.data_cache, "index_seconds": index_s,
             "n_object_images": info["n_images"]["object"], "n_background_patches": info["n_background_patches"],
             "images_per_s": images_per_second(ds, warmup, batches, cfg.train.batch_size)}
            for name, ds in (("X_c", x_c), ("X_bg", x_bg))]


def images_per_second(ds, warmup: int, batches: int, batch_size: int) -> float:
    """Images/s of `batches` batches pulled from `ds` after `warmup` untimed ones."""
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def bench_serving(cfg, batch_sizes, steps: int, warmup: int) -> list[dict]:
    """Latency and images/s of serving_default (PNG bytes in): a freshly exported SavedModel vs in-process."""

    model = OneGAN(cfg.model)
    with tempfile.TemporaryDirectory(prefix="onegan-bench-") as tmp:
        loaded = tf.saved_model.load(export.export_saved_model(model, tmp))
        return time_serving(model, loaded, batch_sizes, steps, warmup)


def time_serving(model: OneGAN, loaded, batch_sizes, steps: int, warmup: int) -> list[dict]:
    """`bench_serving`'s timings of `model` and `loaded`, its export as `tf.saved_model.load` returns it."""

    serving = export.OneGANServing(model)  # held: its tf.functions keep only a weak reference to it
    targets = {"saved_model": loaded.signatures["serving_default"], "in_process": serving.serving_default}
    records = []
    for b in batch_sizes:
        image_bytes = _png_batch(b, model.cfg.image_size)
        for name, fn in targets.items():
            seconds = timed(lambda fn=fn: fn(image_bytes=image_bytes)["mask"].numpy(), steps, max(warmup, 1))
            records.append({
                "what": "serving", "name": f"{name} b{b}", "target": name, "batch": b,
                "latency_p50_s": percentile(seconds, 50), "latency_p95_s": percentile(seconds, 95),
                "images_per_s": b * len(seconds) / sum(seconds), "step_seconds": seconds})
    return records


def _png_batch(batch: int, size: int):
    """`batch` random PNG files of size x size (serving_default's image_bytes input)."""
    images = tf.random.stateless_uniform((batch, size, size, 3), seed=(0, 0), maxval=256, dtype=tf.int32)
    return tf.stack([tf.io.encode_png(tf.cast(im, tf.uint8)) for im in images])


def bench_ops(trainer, cfg, phase: str, top: int = 15) -> list[dict]:
    """Op types by their summed host time in one traced step of `phase` (run after `train`, so the
    step is already traced); from the TF profiler's XSpace of that step."""

    if phase != "I" and not bool(trainer.clones_ready.numpy()):
        trainer.init_clones()
    batch = _train_batches(cfg, 1)[0]
    float(_total(trainer.train_step(batch, phase)))  # trace outside the profile
    with tempfile.TemporaryDirectory(prefix="onegan-profile-") as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        float(_total(trainer.train_step(batch, phase)))
        step_s = time.perf_counter() - start
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    by_type: dict[str, list] = {}
    by_scope: dict[str, list] = {}
    for plane in space.planes:
        names = {k: m.name for k, m in plane.event_metadata.items()}
        for line in plane.lines:
            for ev in line.events:
                op = _parse_op_event(names.get(ev.metadata_id, ""))
                if op:
                    for table_, key in ((by_type, op[1]), (by_scope, op[0])):
                        acc = table_.setdefault(key, [0.0, 0])
                        acc[0] += ev.duration_ps * 1e-12
                        acc[1] += 1
    total = sum(s for s, _ in by_type.values()) or 1.0
    records = []
    for what, table_ in (("ops", by_type), ("op_scopes", by_scope)):
        for name, (s, n) in sorted(table_.items(), key=lambda kv: -kv[1][0])[:top]:
            records.append({"what": what, "name": name, "phase": phase, "op_seconds": s, "op_count": n,
                            "share_of_op_time": s / total, "step_seconds": step_s})
    return records


def _parse_op_event(event_name: str) -> tuple[str, str] | None:
    """(network scope, op type) of a TF op event 'scope/.../name:OpType' (oneDNN kernels keep their
    '_MklNative...' type); None for executor and runtime events ('ExecutorState::Process', ...)."""
    if "::" in event_name or ":" not in event_name:
        return None
    name, op_type = event_name.rsplit(":", 1)
    if not op_type.isidentifier():
        return None
    parts = [p for p in name.split("/") if p not in ("gradient_tape", "replica", "")]
    scope = re.sub(r"_\d+$", "", parts[0]) if len(parts) > 1 else "(top level)"
    return (("grad " if name.startswith("gradient_tape") else "") + scope, op_type)


# ------------------------------------------------------------------------------------------------ driver


def run(cfg, what, phases, steps: int, warmup: int, serving_batches=(1, 32), ceiling=BENCH_CEILING,
        data_batches: int = 20, data_warmup: int = 5, out: str = "") -> list[dict]:
    """Every measurement of `what` for `cfg`, as records stamped with config, machine and load average;
    each is appended to `out` (JSON lines) as soon as it is taken, so a long run keeps what it measured."""
    unknown = set(what) - set(WHAT)
    if unknown:
        raise ValueError(f"--what: unknown measurements {sorted(unknown)}; allowed: {WHAT}")
    bad = [p for p in phases if p not in PHASES]
    if bad:
        raise ValueError(f"--phases: unknown phases {bad}; allowed: {PHASES}")
    if cfg.train.mixed_precision != "off":
        keras.mixed_precision.set_dtype_policy(cfg.train.mixed_precision)
    cfg, estimates = resolve_from_data(cfg)  # --mask_target=auto, as onegan_tf.train estimates it
    for line in estimates:
        print(f"Estimated from the data: {line}")
    machine = machine_info()
    tc, mc = cfg.train, cfg.model
    stamp = {"config": {"image_size": mc.image_size, "channel_mult": mc.channel_mult, "n_child": mc.n_child,
                        "n_parent": mc.n_parent, "batch_size": tc.batch_size,
                        "mixed_precision": tc.mixed_precision, "jit_compile": tc.jit_compile,
                        "mask_target": tc.mask_target, "model": dataclasses.asdict(mc)},
             "machine": machine}
    records = []

    def add(new):
        load = list(os.getloadavg())
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        new = [{**r, **stamp, "loadavg": load, "time": now} for r in new]
        records.extend(new)
        if out:
            with open(out, "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in new)

    trainer = None
    if {"train", "flops", "networks", "ops"} & set(what):
        keras.utils.set_random_seed(tc.seed)
        trainer = OneGANTrainer(cfg)
    train_records = []
    if "train" in what:
        train_records = bench_train(trainer, cfg, phases, steps, warmup)
        add(train_records)
    if "flops" in what:
        add(bench_flops(trainer, cfg, phases, train_records, ceiling, steps, warmup))
    if "ops" in what:
        add(bench_ops(trainer, cfg, phases[-1]))
    if "networks" in what:
        add(bench_networks(trainer.model, cfg, steps, warmup))
    if "data" in what:
        add(bench_data(cfg, data_warmup, data_batches))
    if "serving" in what:
        add(bench_serving(cfg, serving_batches, steps, warmup))
    return records


def table(records) -> str:
    """The records as a readable table (one row each)."""
    head = f"{'what':9} {'name':44} {'s/step':>9} {'img/s':>9} {'GFLOP':>9} {'GFLOP/s':>8} {'p95 s':>8} " \
           f"{'RSS MiB':>8} {'load1':>5}"
    rows = [head, "-" * len(head)]

    def num(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else ""

    for r in records:
        if r["name"] == "networks" and r["what"] == "flops":
            for net, f in r["forward_flops_per_sample"].items():
                rows.append(f"{'flops':9} {'forward/sample ' + net:44} {'':>9} {'':>9} {f / 1e9:9.4f}")
            continue
        gflop = r.get("training_flops", r.get("forward_flops"))
        seconds = r.get("seconds_per_step", r.get("latency_p50_s", r.get("op_seconds")))
        name = r["name"] + (f" ({100 * r['share_of_op_time']:.0f}%)" if "share_of_op_time" in r else "")
        flop_per_s = r.get("flop_per_s") and r["flop_per_s"] / 1e9
        rows.append(f"{r['what']:9} {name[:44]:44} {num(seconds, '9.4f'):>9} {num(r.get('images_per_s'), '9.1f'):>9} "
                    f"{num(gflop and gflop / 1e9, '9.3f'):>9} {num(flop_per_s, '8.1f'):>8} "
                    f"{num(r.get('latency_p95_s'), '8.4f'):>8} {num(r.get('host_peak_rss_mib'), '8.0f'):>8} "
                    f"{r['loadavg'][0]:5.2f}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m onegan_tf.bench [--what=train,flops,data,serving] [--FIELD=VALUE ...]`."""
    fv = cli.parse(argv, define_flags, usage="python -m onegan_tf.bench [--what=train,flops,data,serving] "
                   "[--phases=I,IIa,IIb] [--steps=5] [--out=FILE] [--FIELD=VALUE ...]")
    if fv is None:
        return 2
    cfg = config_from_flags(fv)
    records = run(cfg, fv.what, fv.phases, fv.steps, fv.warmup,
                  serving_batches=[int(b) for b in fv.serving_batches],
                  ceiling=[int(c) for c in fv.ceiling],
                  data_batches=fv.bench_batches, data_warmup=fv.bench_warmup, out=fv.out)
    if records:
        m = records[0]["machine"]
        print(f"machine: {m['cpu_model']}, {m['cpu_count']} CPUs ({m['sched_cpus']} usable), {m['platform']}, "
              f"TensorFlow {m['tensorflow']}, devices {m['devices']}")
        print(f"config: {records[0]['config']}; load average at the end: {os.getloadavg()}")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
