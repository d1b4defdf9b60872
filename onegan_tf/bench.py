"""`python -m onegan_tf.bench`: how fast one configuration trains and serves on this machine (issue 7).

    python -m onegan_tf.bench --image_size=32 --channel_mult=0.25 --batch_size=20 --steps=5 \\
        --what=train,flops,data,serving --out=bench.jsonl

Every training flag is a flag here too (`--image_size`, `--channel_mult`, `--batch_size`,
`--mixed_precision`, `--jit_compile`, the data flags, ...). `--what` picks the measurements:

- `train`    seconds per training step and images/s of each phase in `--phases`, the median of `--steps`
             steps after `--warmup` steps (the first traces the phase's tf.function); every step is synced
             by fetching its total loss. The inputs are fixed random images and this step's `step_noise`,
             so the data pipeline is not timed here. Also: traces of the phase's step function, host memory
             (resident now and process peak), device memory on a GPU.
- `flops`    model FLOPs of one training step of each phase (`onegan_tf.flops`), the achieved FLOP/s
             when `train` ran too, and the FLOP/s of one large convolution timed the same way
             (`--ceiling`, the practical ceiling of this device).
- `data`     images/s of the X_c and X_bg `tf.data` pipelines (`onegan_tf.data.bench`; `--bench_warmup`,
             `--bench_batches`).
- `serving`  latency p50/p95 and images/s of `serving_default` (PNG bytes in) of a freshly exported
             SavedModel, beside the same signature called in-process, at each batch of `--serving_batches`.
- `networks` forward seconds and FLOP/s of each network alone at the training batch (where a step's
             time goes).
- `ops`      the op types, and the networks (top name scope; `grad` = their backward), that take the
             most time in one step of the last phase of `--phases` (TF profiler trace, op events summed;
             with intra-op threads the sum can exceed the step's wall time).

One JSON line per measurement goes to `--out` (appended), each with the config, the machine (platform,
CPUs, CPU model, TF version, devices) and the load average when it was taken; a table goes to stdout.
Timings on a shared machine are inflated by its load: compare numbers only at a similar load average.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import resource
import statistics
import tempfile
import time

from absl import app, flags

from onegan_tf.flags import config_from_flags, define_config_flags

WHAT = ("train", "flops", "data", "serving", "networks", "ops")
PHASE_INDEX = {"I": 0, "IIa": 1, "IIb": 2}
FLAGS = flags.FLAGS


def _define_flags() -> None:
    """The bench's flags, every training flag, and --bench_warmup/--bench_batches of onegan_tf.data.bench;
    defined only when the bench runs as a program, so importing this module defines no global flag."""
    import onegan_tf.data.bench  # noqa: F401  (defines --bench_warmup, --bench_batches)

    flags.DEFINE_list("phases", ["I", "IIa", "IIb"], "Phases to time: I, IIa, IIb.")
    flags.DEFINE_integer("steps", 5, "Timed steps (or calls) per measurement, after the warm-up.")
    flags.DEFINE_integer("warmup", 2, "Untimed steps (or calls) first; the first one traces.")
    flags.DEFINE_string("out", "", "Append one JSON line per measurement to this file ('' = table only).")
    flags.DEFINE_list("what", ["train", "flops", "data", "serving"], f"Measurements, any of {WHAT}.")
    flags.DEFINE_list("serving_batches", ["1", "32"], "Batch sizes of the serving measurement.")
    flags.DEFINE_list("ceiling", ["20", "64", "256", "256", "3"],
                      "The ceiling convolution: batch, size, c_in, c_out, kernel ('same', stride 1).")
    define_config_flags()


# ---------------------------------------------------------------------------------------------- machine


def machine_info() -> dict:
    """Where the numbers come from: platform, CPUs, CPU model, TensorFlow version and devices."""
    import tensorflow as tf

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    info = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "sched_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model or platform.processor() or platform.machine(),
        "tensorflow": tf.__version__,
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        info["gpus"] = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return info


def memory_info() -> dict:
    """Host memory in MiB: resident now and the process' peak so far (ru_maxrss); GPU:0 current and peak."""
    import psutil
    import tensorflow as tf

    out = {"host_rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
           "host_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, 1)}
    if tf.config.list_physical_devices("GPU"):
        mem = tf.config.experimental.get_memory_info("GPU:0")
        out.update(device_mib=round(mem["current"] / 2**20, 1), device_peak_mib=round(mem["peak"] / 2**20, 1))
    return out


def _reset_device_peak():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


def timed(fn, steps: int, warmup: int) -> list[float]:
    """Seconds of each of `steps` calls of `fn` after `warmup` untimed ones; `fn` must sync (fetch a value)."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


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
    import tensorflow as tf

    from onegan_tf.trainer import step_noise

    b, s = cfg.train.batch_size, cfg.model.image_size
    gen = tf.random.Generator.from_seed(cfg.train.seed)
    real = {k: gen.uniform((b, s, s, 3), -1.0, 1.0) for k in ("x_c", "x_bg")}
    return [{**real, **step_noise(cfg.train.seed, step, b, cfg)} for step in range(n)]


def _total(out: dict):
    return out["total/L_AE"] if "total/L_AE" in out else out["total/L_GEN"]


def bench_train(trainer, cfg, phases, steps: int, warmup: int) -> list[dict]:
    """Seconds per step of each phase (median after warm-up), images/s, traces and memory."""
    from onegan_tf.trainer import PHASES

    batches = _train_batches(cfg, warmup + steps)
    records = []
    for name in phases:
        phase = PHASE_INDEX[name]
        if phase >= 1 and not bool(trainer.clones_ready.numpy()):
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
            "what": "train", "name": f"phase {PHASES[phase]}", "phase": PHASES[phase],
            "seconds_per_step": median, "images_per_s": cfg.train.batch_size / median,
            "step_seconds": seconds, "first_step_seconds": first,
            "traces": trainer.tracing_counts()[PHASES[phase]],
            **memory_info()})
    return records


def bench_flops(trainer, cfg, phases, train_records, ceiling, steps: int, warmup: int) -> list[dict]:
    """FLOPs of one step of each phase, achieved FLOP/s where the step was timed, and the ceiling conv."""
    from onegan_tf import flops
    from onegan_tf.trainer import PHASES

    seconds = {r["phase"]: r["seconds_per_step"] for r in train_records}
    records = [{"what": "flops", "name": "networks", "forward_flops_per_sample":
                flops.network_table(trainer.model)}]
    for name in phases:
        phase = PHASE_INDEX[name]
        f = flops.step_flops(trainer.model, cfg.train, phase, cfg.train.batch_size)
        rec = {"what": "flops", "name": f"phase {PHASES[phase]}", "phase": PHASES[phase],
               "forward_flops": f["forward"], "training_flops": f["training"],
               "training_flops_by_network": f["by_network"], "training_flops_by_call": f["by_call"]}
        if PHASES[phase] in seconds:
            rec["seconds_per_step"] = seconds[PHASES[phase]]
            rec["flop_per_s"] = f["training"] / seconds[PHASES[phase]]
        records.append(rec)
    records.append(bench_ceiling(*ceiling, steps=steps, warmup=warmup))
    return records


def bench_ceiling(batch: int, size: int, c_in: int, c_out: int, kernel: int, steps: int, warmup: int) -> dict:
    """FLOP/s of one large 'same' convolution in the policy's compute dtype: the practical ceiling."""
    import keras
    import tensorflow as tf

    from onegan_tf import flops

    dtype = keras.mixed_precision.dtype_policy().compute_dtype
    gen = tf.random.Generator.from_seed(0)
    x = tf.cast(gen.normal((batch, size, size, c_in)), dtype)
    w = tf.cast(gen.normal((kernel, kernel, c_in, c_out)) * 0.01, dtype)
    conv = tf.function(lambda x, w: tf.reduce_sum(tf.cast(tf.nn.conv2d(x, w, 1, "SAME"), tf.float32)))
    seconds = timed(lambda: float(conv(x, w)), steps, max(warmup, 1))
    median = statistics.median(seconds)
    f = flops.conv_flops(batch, size, c_in, c_out, kernel)
    return {"what": "flops", "name": f"ceiling conv {kernel}x{kernel} {size}x{size}x{c_in}->{c_out} b{batch}",
            "dtype": dtype, "forward_flops": f, "seconds_per_step": median, "step_seconds": seconds,
            "flop_per_s": f / median}


def bench_networks(model, cfg, steps: int, warmup: int) -> list[dict]:
    """Forward seconds of each network alone at the training batch, with its FLOP/s."""
    import tensorflow as tf

    from onegan_tf import flops
    from onegan_tf.networks import example_inputs

    b = cfg.train.batch_size
    records = []
    for name, net in model.networks.items():
        x = example_inputs(name, cfg.model, batch=b)
        fn = tf.function(lambda x, net=net: tf.nest.map_structure(
            lambda t: tf.reduce_sum(tf.cast(t, tf.float32)), net(x, training=True)))
        seconds = timed(lambda: tf.nest.map_structure(float, fn(x)), steps, max(warmup, 1))
        median = statistics.median(seconds)
        f = flops.network_flops(net) * b
        records.append({"what": "networks", "name": name, "forward_flops": f, "seconds_per_step": median,
                        "step_seconds": seconds, "flop_per_s": f / median})
    return records


def bench_data(cfg, warmup: int, batches: int) -> list[dict]:
    """images/s of the X_c and X_bg pipelines (`onegan_tf.data.bench`)."""
    from onegan_tf.data import bench as data_bench
    from onegan_tf.data.pipeline import train_streams

    x_c, x_bg = train_streams(cfg.data, cfg.model.image_size, cfg.train.batch_size, cfg.train.seed)
    return [{"what": "data", "name": name, "dataset": cfg.data.dataset, "batches": batches,
             "images_per_s": data_bench._time_stream(ds, warmup, batches, cfg.train.batch_size)}
            for name, ds in (("X_c", x_c), ("X_bg", x_bg))]


def bench_serving(cfg, batch_sizes, steps: int, warmup: int) -> list[dict]:
    """Latency and images/s of serving_default (PNG bytes in): exported SavedModel vs in-process."""
    import tensorflow as tf

    from onegan_tf import export
    from onegan_tf.model import OneGAN

    model = OneGAN(cfg.model)
    records = []
    with tempfile.TemporaryDirectory(prefix="onegan-bench-") as tmp:
        path = export.export_saved_model(model, tmp)
        loaded = tf.saved_model.load(path)
        serving = export.OneGANServing(model)  # held: its tf.functions keep only a weak reference to it
        targets = {"saved_model": loaded.signatures["serving_default"], "in_process": serving.serving_default}
        for b in batch_sizes:
            image_bytes = _png_batch(b, cfg.model.image_size)
            for name, fn in targets.items():
                seconds = timed(lambda fn=fn: fn(image_bytes=image_bytes)["mask"].numpy(), steps, max(warmup, 1))
                records.append({
                    "what": "serving", "name": f"{name} b{b}", "target": name, "batch": b,
                    "latency_p50_s": percentile(seconds, 50), "latency_p95_s": percentile(seconds, 95),
                    "images_per_s": b * len(seconds) / sum(seconds), "step_seconds": seconds})
    return records


def _png_batch(batch: int, size: int):
    """`batch` random PNG files of size x size (serving_default's image_bytes input)."""
    import tensorflow as tf

    images = tf.random.stateless_uniform((batch, size, size, 3), seed=(0, 0), maxval=256, dtype=tf.int32)
    return tf.stack([tf.io.encode_png(tf.cast(im, tf.uint8)) for im in images])


def bench_ops(trainer, cfg, phase_name: str, top: int = 15) -> list[dict]:
    """Op types by their summed host time in one traced step of `phase_name` (run after `train`, so the
    step is already traced); from the TF profiler's XSpace of that step."""
    import glob

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    phase = PHASE_INDEX[phase_name]
    if phase >= 1 and not bool(trainer.clones_ready.numpy()):
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
            records.append({"what": what, "name": name, "phase": phase_name, "op_seconds": s, "op_count": n,
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


def run(cfg, what, phases, steps: int, warmup: int, serving_batches=(1, 32), ceiling=(20, 64, 256, 256, 3),
        data_batches: int = 20, data_warmup: int = 5, out: str = "") -> list[dict]:
    """Every measurement of `what` for `cfg`, as records stamped with config, machine and load average;
    each is appended to `out` (JSON lines) as soon as it is taken, so a long run keeps what it measured."""
    import keras

    unknown = set(what) - set(WHAT)
    if unknown:
        raise ValueError(f"--what: unknown measurements {sorted(unknown)}; allowed: {WHAT}")
    bad = [p for p in phases if p not in PHASE_INDEX]
    if bad:
        raise ValueError(f"--phases: unknown phases {bad}; allowed: {tuple(PHASE_INDEX)}")
    if cfg.train.mixed_precision != "off":
        keras.mixed_precision.set_dtype_policy(cfg.train.mixed_precision)
    machine = machine_info()
    tc, mc = cfg.train, cfg.model
    stamp = {"config": {"image_size": mc.image_size, "channel_mult": mc.channel_mult, "n_child": mc.n_child,
                        "n_parent": mc.n_parent, "batch_size": tc.batch_size,
                        "mixed_precision": tc.mixed_precision, "jit_compile": tc.jit_compile},
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
        from onegan_tf.trainer import OneGANTrainer

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
        rows.append(f"{r['what']:9} {name[:44]:44} {num(seconds, '9.4f'):>9} {num(r.get('images_per_s'), '9.1f'):>9} "
                    f"{num(gflop and gflop / 1e9, '9.3f'):>9} {num(r.get('flop_per_s') and r['flop_per_s'] / 1e9, '8.1f'):>8} "
                    f"{num(r.get('latency_p95_s'), '8.4f'):>8} {num(r.get('host_peak_rss_mib'), '8.0f'):>8} "
                    f"{r['loadavg'][0]:5.2f}")
    return "\n".join(rows)


def main(argv):
    del argv
    cfg = config_from_flags()
    records = run(cfg, FLAGS.what, FLAGS.phases, FLAGS.steps, FLAGS.warmup,
                  serving_batches=[int(b) for b in FLAGS.serving_batches],
                  ceiling=[int(c) for c in FLAGS.ceiling],
                  data_batches=FLAGS.bench_batches, data_warmup=FLAGS.bench_warmup, out=FLAGS.out)
    if records:
        m = records[0]["machine"]
        print(f"machine: {m['cpu_model']}, {m['cpu_count']} CPUs ({m['sched_cpus']} usable), {m['platform']}, "
              f"TensorFlow {m['tensorflow']}, devices {m['devices']}")
        print(f"config: {records[0]['config']}; load average at the end: {os.getloadavg()}")
    print(table(records))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
