"""Throughput of the training pipelines: images/s of X_c and X_bg (issue 3).

    python -m onegan_tf.data.bench --dataset=synthetic --image_size=128

Builds `train_streams` from the usual flags (every Config field is a flag), pulls `--bench_warmup`
batches, then times `--bench_batches` batches of each stream separately and prints the machine and one
JSON line. Measured numbers are recorded in data/README.md.
"""

from __future__ import annotations

import json
import os
import platform
import time

from absl import app, flags

from onegan_tf.flags import config_from_flags, define_config_flags

flags.DEFINE_integer("bench_batches", 50, "Batches timed per stream, after the warm-up.")
flags.DEFINE_integer("bench_warmup", 5, "Batches pulled per stream before timing (fills the prefetch "
                     "buffers and lets AUTOTUNE settle).")
define_config_flags()
FLAGS = flags.FLAGS


def _time_stream(ds, warmup: int, batches: int, batch_size: int) -> float:
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    import tensorflow as tf

    from onegan_tf.data.pipeline import describe, train_streams

    cfg = config_from_flags()
    start = time.perf_counter()
    info = describe(cfg.data)
    index_s = time.perf_counter() - start
    x_c, x_bg = train_streams(cfg.data, cfg.model.image_size, cfg.train.batch_size, cfg.train.seed)
    result = {
        "dataset": cfg.data.dataset,
        "image_size": cfg.model.image_size,
        "batch_size": cfg.train.batch_size,
        "batches": FLAGS.bench_batches,
        "data_cache": cfg.data.data_cache,
        "index_seconds": round(index_s, 2),
        "n_object_images": info["n_images"]["object"],
        "n_background_patches": info["n_background_patches"],
        "x_c_images_per_s": round(_time_stream(x_c, FLAGS.bench_warmup, FLAGS.bench_batches,
                                               cfg.train.batch_size), 1),
        "x_bg_images_per_s": round(_time_stream(x_bg, FLAGS.bench_warmup, FLAGS.bench_batches,
                                                cfg.train.batch_size), 1),
        "cpu_count": os.cpu_count(),
        "sched_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__,
    }
    print(f"machine: {result['cpu_count']} CPUs ({result['sched_cpus']} usable), {result['platform']}, "
          f"TensorFlow {result['tensorflow']}")
    print(f"X_c : {result['x_c_images_per_s']:.1f} images/s   X_bg: {result['x_bg_images_per_s']:.1f} images/s "
          f"at {cfg.model.image_size}x{cfg.model.image_size}, batch {cfg.train.batch_size}")
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
