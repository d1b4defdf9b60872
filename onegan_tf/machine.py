"""The machine a number was measured on: what it is, and how fast it runs one large convolution.

Absolute speed on the same kind of machine varies 2-4x from day to day and with load, so every measurement
(`python -m onegan_tf.bench`, a training run's summary.json and report.md) carries `machine_info()` and the
FLOP/s of one large 'same' convolution timed the same way (`ceiling_conv`): the practical ceiling of this
device at that moment, against which a step's FLOP/s or a run's wall time can be read.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import keras
import tensorflow as tf

from onegan_tf import runtime
from onegan_tf.flops import conv_flops

# (batch, size, c_in, c_out, kernel) of the ceiling convolution: the bench's default, and the smaller one a
# training run times for its summary (about 39 GFLOP per call; a second or two on a 2-core CPU).
BENCH_CEILING = (20, 64, 256, 256, 3)
RUN_CEILING = (8, 64, 256, 256, 3)


def machine_info() -> dict:
    """Where the numbers come from: platform, CPUs, CPU model, TensorFlow version and devices."""
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


def concurrent_slices(batch: int) -> int:
    """Into how many slices of the batch the ceiling conv is split, to run at once on the inter-op pool.

    The ceiling is the whole device's: where the intra-op pool is smaller than the usable CPUs
    (`onegan_tf.runtime` gives it one thread on two-CPU machines), one convolution cannot use every core,
    so as many convolutions as the pool fits into the CPUs run side by side over slices of the batch.
    """
    intra = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0") or 0)
    return 1 if intra <= 0 else max(1, min(batch, runtime.usable_cpus() // intra))


def ceiling_conv(batch: int, size: int, c_in: int, c_out: int, kernel: int, steps: int, warmup: int) -> dict:
    """FLOP/s of one large 'same' convolution in the policy's compute dtype: the practical ceiling."""
    dtype = keras.mixed_precision.dtype_policy().compute_dtype
    gen = tf.random.Generator.from_seed(0)
    x = tf.cast(gen.normal((batch, size, size, c_in)), dtype)
    w = tf.cast(gen.normal((kernel, kernel, c_in, c_out)) * 0.01, dtype)
    n = concurrent_slices(batch)
    sizes = [batch // n + (i < batch % n) for i in range(n)]
    conv = tf.function(lambda x, w: tf.add_n([tf.reduce_sum(tf.cast(tf.nn.conv2d(part, w, 1, "SAME"), tf.float32))
                                              for part in tf.split(x, sizes)]))
    seconds = timed(lambda: float(conv(x, w)), steps, max(warmup, 1))
    median = statistics.median(seconds)
    f = conv_flops(batch, size, c_in, c_out, kernel)
    return {"what": "flops", "name": f"ceiling conv {kernel}x{kernel} {size}x{size}x{c_in}->{c_out} b{batch}",
            "dtype": dtype, "forward_flops": f, "seconds_per_step": median, "step_seconds": seconds,
            "flop_per_s": f / median, "concurrent_slices": n}


def run_machine() -> dict:
    """What a training run records beside its wall time: the machine, its load and its ceiling right now."""
    ceiling = ceiling_conv(*RUN_CEILING, steps=3, warmup=1)
    return {**machine_info(), "loadavg": list(os.getloadavg()), "ceiling_conv": ceiling["name"],
            "ceiling_conv_gflop_per_s": round(ceiling["flop_per_s"] / 1e9, 1)}
