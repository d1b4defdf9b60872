"""Where one training step's time goes: op counts and op time by kind, and how many cores are busy.

    PYTHONPATH=$PWD python benchmarks/step_levers/profile_step.py --image_size=32 --channel_mult=0.25 \\
        --batch_size=20 --phases=I,IIb --out=benchmarks/step_levers/profile_base.json

Per phase, after two untraced warm-up steps, `--profiled` steps run under the TF profiler; from its XSpace,
every op event (TensorFlow ops and oneDNN kernels, not executor bookkeeping) is classed as a convolution
(forward or backward), the optimiser update (name scope `opt_*`) or the rest (normalisation, GLU, losses,
concat/split, gradient sums: small elementwise and reduction ops). The wall time of the step is split by how
many ops run at once (0 = the executor waits on Python or a sync; 2+ = both inter-op threads run an op,
which on two cores also means they compete for the intra-op threads), and, over a few unprofiled steps,
the process' CPU seconds per wall second (how many of the cores the step keeps busy).
"""

from __future__ import annotations

import glob
import json
import os
import resource
import sys
import tempfile
import time

import keras
import tensorflow as tf
from absl import flags
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from onegan_tf import cli
from onegan_tf.bench import _parse_op_event, _total, _train_batches
from onegan_tf.flags import config_from_flags, define_config_flags
from onegan_tf.trainer import OneGANTrainer

WRAPPERS = ("PartitionedCall", "StatefulPartitionedCall", "__inference", "While", "If")


def define_flags(fv):
    flags.DEFINE_list("phases", ["I", "IIb"], "Phases to profile.", flag_values=fv)
    flags.DEFINE_integer("profiled", 3, "Profiled steps per phase.", flag_values=fv)
    flags.DEFINE_string("out", "", "Write the per-phase summary here (JSON).", flag_values=fv)
    define_config_flags(fv)


def kind(scope: str, op_type: str) -> str:
    if "Conv2D" in op_type:
        return "conv"
    if scope.lstrip("grad ").startswith("opt_"):
        return "optimizer"
    return "other"


def summarise(space) -> dict:
    """Op statistics of the profiled step; the sweep spans its first op's start to its last op's end."""
    intervals, by_kind, by_type = [], {}, {}
    for plane in space.planes:
        names = {k: m.name for k, m in plane.event_metadata.items()}
        for line in plane.lines:
            for ev in line.events:
                op = _parse_op_event(names.get(ev.metadata_id, ""))
                if not op or op[1].startswith(WRAPPERS):
                    continue
                start = line.timestamp_ns + ev.offset_ps / 1e3
                end = start + ev.duration_ps / 1e3
                intervals.append((start, end))
                k = kind(*op)
                acc = by_kind.setdefault(k, [0.0, 0])
                acc[0] += ev.duration_ps * 1e-12
                acc[1] += 1
                acc = by_type.setdefault(op[1], [0.0, 0])
                acc[0] += ev.duration_ps * 1e-12
                acc[1] += 1
    # Wall time by the number of ops running at once (a sweep over the op intervals).
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    t0_ns, t1_ns = points[0][0], points[-1][0]
    busy = {0: 0.0, 1: 0.0, 2: 0.0}
    running, last = 0, t0_ns
    for t, d in points:
        busy[min(running, 2)] += (t - last) * 1e-9
        running, last = running + d, t
    busy[0] += (t1_ns - last) * 1e-9
    return {"ops": len(intervals), "by_kind": {k: {"seconds": s, "count": n} for k, (s, n) in by_kind.items()},
            "top_ops": {k: {"seconds": s, "count": n}
                        for k, (s, n) in sorted(by_type.items(), key=lambda kv: -kv[1][0])[:20]},
            "wall_by_ops_running": {str(k): v for k, v in busy.items()}}


def profile(trainer, cfg, phase: str, steps: int) -> dict:
    if phase != "I" and not bool(trainer.clones_ready.numpy()):
        trainer.init_clones()
    batches = _train_batches(cfg, steps + 2)
    for b in batches[:2]:
        float(_total(trainer.train_step(b, phase)))
    # Cores busy without the profiler: process CPU seconds (user + system, every thread) per wall second.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, t0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    for b in batches:
        float(_total(trainer.train_step(b, phase)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - t0
    cores = {"unprofiled_steps": len(batches), "wall_seconds_per_step": wall / len(batches),
             "cpu_seconds_per_wall_second": (usage.ru_utime + usage.ru_stime - cpu0) / wall}
    out = []
    for b in batches[2:]:
        with tempfile.TemporaryDirectory(prefix="onegan-profile-") as logdir:
            tf.profiler.experimental.start(logdir)
            t0 = time.time_ns()
            float(_total(trainer.train_step(b, phase)))
            t1 = time.time_ns()
            tf.profiler.experimental.stop()
            space = xplane_pb2.XSpace()
            with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
                space.ParseFromString(f.read())
        out.append({"wall_seconds": (t1 - t0) * 1e-9, **summarise(space)})
    return {"phase": phase, **cores, "steps": out, "loadavg": list(os.getloadavg())}


def main(argv=None) -> int:
    fv = cli.parse(argv, define_flags, usage="profile_step.py [--phases=I,IIb] [--FIELD=VALUE ...]")
    if fv is None:
        return 2
    cfg = config_from_flags(fv)

    if cfg.train.mixed_precision != "off":
        keras.mixed_precision.set_dtype_policy(cfg.train.mixed_precision)
    keras.utils.set_random_seed(cfg.train.seed)
    trainer = OneGANTrainer(cfg)
    result = [profile(trainer, cfg, p, fv.profiled) for p in fv.phases]
    for r in result:
        print(f"phase {r['phase']}: {r['wall_seconds_per_step']:.3f} s/step unprofiled, "
              f"{r['cpu_seconds_per_wall_second']:.2f} cores busy")
        for s in r["steps"]:
            kinds = ", ".join(f"{k} {v['seconds']:.3f}s/{v['count']}" for k, v in sorted(s["by_kind"].items()))
            w = s["wall_by_ops_running"]
            print(f"phase {r['phase']}: wall {s['wall_seconds']:.3f}s, {s['ops']} ops ({kinds}); "
                  f"first op to last op with 0/1/2+ ops running {w['0']:.3f}/{w['1']:.3f}/{w['2']:.3f}s")
    if fv.out:
        with open(fv.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
