"""onegan_tf's training step against the best eager PyTorch build, on this machine.

Standard library only: it runs each framework in its own virtualenv as a subprocess.

    python benchmarks/torch_reference/compare.py check --image_size=32 --channel_mult=0.25
    python benchmarks/torch_reference/compare.py bench --config=32:0.25:20:5:2 --config=128:1.0:2:2:1 \\
        --phases=I,IIb --rounds=3 --out=bench.jsonl
    python benchmarks/torch_reference/compare.py settings --framework=onegan_tf --phases=I,IIb

`check`: parameter counts per network and forward FLOPs of one step per phase, onegan_tf
(`tf_reference.py`, i.e. `onegan_tf.flops.step_flops`) against the PyTorch build (hooks on every Conv2d and
Linear call of a real step); exits 1 on any difference.
`bench`: `--rounds` rounds; in each, at every `--config` (SIZE:MULT:BATCH:STEPS:WARMUP) and every
`--precision` (fp32; bf16 = onegan_tf's `--mixed_precision=mixed_bfloat16` against PyTorch's CPU autocast to
bfloat16), one run of `python -m onegan_tf.bench --what=train,flops` (which also times the ceiling conv) and
one of `onegan_torch.py bench` (its default: the best build), alternating which goes first (A B, B A, ...)
so that the load of a shared machine falls on both alike. Every measurement is printed as a JSON line (and
appended to `--out`) with the load average; then, per config, precision and phase, the median over rounds of
each framework's s/step, the ratio onegan_tf / PyTorch, the load range, the ceiling conv (timed in
onegan_tf's compute dtype) and onegan_tf's FLOP/s as a share of it, also appended to `--out` as "summary"
lines; with more than one precision, also each framework's fastest precision against the other's ("best").
`settings`: each setting of one framework (`TORCH_SETTINGS`, `TF_SETTINGS`) alone against its baseline, in
rounds that rotate their order.
Run from the repository root.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _run(cmd, env=None):
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if res.returncode:
        sys.stderr.write(res.stdout[-3000:] + res.stderr[-3000:])
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}")
    return res.stdout


def _json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def check(a):
    size = [f"--image_size={a.image_size}", f"--channel_mult={a.channel_mult}", f"--batch_size={a.batch_size}"]
    tf_out = _json_lines(_run([a.tf_python, os.path.join(HERE, "tf_reference.py"), *size, f"--phases={a.phases}"],
                              {"TF_CPP_MIN_LOG_LEVEL": "3"}))[-1]
    torch_out = _json_lines(_run([a.torch_python, os.path.join(HERE, "onegan_torch.py"), "count", *size,
                                  f"--phases={a.phases}"]))[-1]
    bad = 0
    for key in ("params", "forward_flops"):
        # A network or phase that one side lacks is a difference, not something to skip.
        for name in sorted(set(tf_out[key]) | set(torch_out[key])):
            ref, got = tf_out[key].get(name), torch_out[key].get(name)
            same = ref is not None and ref == got
            bad += not same
            show = lambda v: f"{v:>16,}" if v is not None else f"{'MISSING':>16}"  # noqa: E731
            print(f"{key:14} {name:6} onegan_tf {show(ref)}  torch {show(got)}  {'ok' if same else 'DIFFERENT'}")
    print(f"total params: onegan_tf {sum(tf_out['params'].values()):,}, torch {sum(torch_out['params'].values()):,}")
    print(json.dumps({"what": "check", "config": size, "onegan_tf": tf_out, "torch": torch_out, "differences": bad}))
    return 1 if bad else 0


def _parse_configs(a) -> list[dict]:
    """The configurations of `bench`: each --config 'SIZE:MULT:BATCH:STEPS:WARMUP', else the single flags."""
    if not a.config:
        return [{"image_size": a.image_size, "channel_mult": a.channel_mult, "batch_size": a.batch_size,
                 "steps": a.steps, "warmup": a.warmup}]
    configs = []
    for spec in a.config:
        parts = spec.split(":")
        if len(parts) != 5:
            raise SystemExit(f"--config={spec}: expected SIZE:MULT:BATCH:STEPS:WARMUP, e.g. 32:0.25:20:5:2")
        try:
            size, mult, batch, steps, warmup = int(parts[0]), float(parts[1]), *map(int, parts[2:])
        except ValueError:
            raise SystemExit(f"--config={spec}: SIZE, BATCH, STEPS, WARMUP are integers, MULT a number") from None
        configs.append({"image_size": size, "channel_mult": mult, "batch_size": batch, "steps": steps,
                        "warmup": warmup})
    return configs


def _label(cfg) -> str:
    return f"{cfg['image_size']}px x{cfg['channel_mult']:g} b{cfg['batch_size']}"


# The same arithmetic precision on both sides: name -> (onegan_tf.bench flags, onegan_torch.py bench flags).
PRECISIONS = {
    "fp32": ((), ()),
    "bf16": (("--mixed_precision=mixed_bfloat16",), ("--autocast=bf16",)),
}


def _parse_precisions(a) -> list[str]:
    names = a.precision.split(",")
    unknown = [n for n in names if n not in PRECISIONS]
    if unknown:
        raise SystemExit(f"--precision={a.precision}: unknown {unknown}; choose from {', '.join(PRECISIONS)}")
    return names


def _common(cfg, phases) -> list[str]:
    return [f"--image_size={cfg['image_size']}", f"--channel_mult={cfg['channel_mult']}",
            f"--batch_size={cfg['batch_size']}", f"--phases={phases}", f"--steps={cfg['steps']}",
            f"--warmup={cfg['warmup']}"]


def tf_bench(a, cfg, env=None, flags=()) -> list[dict]:
    """One `python -m onegan_tf.bench --what=train,flops` run: a record per phase (s/step, FLOP/s) and one
    of the ceiling conv timed in the same process (`--ceiling`)."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        _run([a.tf_python, "-m", "onegan_tf.bench", "--what=train,flops", f"--out={f.name}",
              f"--ceiling={a.ceiling}", *_common(cfg, a.phases), *flags, *a.tf_flag],
             {"TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})
        out = _json_lines(open(f.name).read())
    train = {r["phase"]: r for r in out if r["what"] == "train"}
    flop_rate = {r["phase"]: r.get("flop_per_s") for r in out if r["what"] == "flops" and "phase" in r}
    ceiling = next(r for r in out if r["what"] == "flops" and r["name"].startswith("ceiling"))
    records = [{"framework": "onegan_tf", "phase": p, "seconds_per_step": r["seconds_per_step"],
                "images_per_s": r["images_per_s"], "step_seconds": r["step_seconds"],
                "flop_per_s": flop_rate.get(p), "loadavg": r["loadavg"], "config": r["config"],
                "host_peak_rss_mib": r.get("host_peak_rss_mib"), "machine": r["machine"]} for p, r in train.items()]
    records.append({"framework": "onegan_tf", "what": "ceiling_conv", "name": ceiling["name"],
                    "flop_per_s": ceiling["flop_per_s"], "seconds_per_step": ceiling["seconds_per_step"],
                    "loadavg": list(os.getloadavg())})
    return records


def ceiling_alone(a) -> dict:
    """The ceiling conv timed in a process of its own (onegan_tf.machine.ceiling_conv, 5 calls after 2)."""
    code = ("import json, os; from onegan_tf.machine import ceiling_conv; "
            f"r = ceiling_conv({a.ceiling}, steps=5, warmup=2); r['loadavg'] = list(os.getloadavg()); "
            "print(json.dumps(r))")
    r = _json_lines(_run([a.tf_python, "-c", code], {"TF_CPP_MIN_LOG_LEVEL": "3"}))[-1]
    return {"framework": "onegan_tf", "what": "ceiling_conv", "name": r["name"], "flop_per_s": r["flop_per_s"],
            "seconds_per_step": r["seconds_per_step"], "loadavg": r["loadavg"]}


def torch_bench(a, cfg, flags=(), env=None) -> list[dict]:
    """One `onegan_torch.py bench` run (its default: the best build) with extra `flags` and `env`."""
    threads = [] if any(f.startswith("--threads") for f in flags) else [f"--threads={a.threads}"]
    return _json_lines(_run([a.torch_python, os.path.join(HERE, "onegan_torch.py"), "bench",
                             *_common(cfg, a.phases), *threads, *flags, *a.torch_flag], env))


def bench(a):
    """Both frameworks at every configuration and precision, `--rounds` rounds, alternating which goes first."""
    configs, precisions, records = _parse_configs(a), _parse_precisions(a), []
    for i in range(a.rounds):
        for cfg in configs:
            for prec in precisions:
                tf_flags, torch_flags = PRECISIONS[prec]
                runs = (("onegan_tf", lambda: tf_bench(a, cfg, flags=tf_flags)),
                        ("torch", lambda: torch_bench(a, cfg, flags=torch_flags)))
                for fw, fn in (runs if i % 2 == 0 else runs[::-1]):
                    for r in fn():
                        r = {**r, "framework": fw, "round": i, "bench_config": _label(cfg), "precision": prec,
                             "time": _now()}
                        records.append(r)
                        _emit(r, a.out)
    print(f"\n{_now()}: median over {a.rounds} rounds of each run's median s/step; rounds alternate which "
          "framework goes first")
    print(f"{'config':18} {'precision':16} {'phase':5} {'onegan_tf s/step':>16} {'torch s/step':>13} "
          f"{'onegan_tf/torch':>15} {'load (1 min)':>13} {'ceiling GFLOP/s':>15} {'onegan_tf % of ceiling':>22}")
    for cfg in configs:
        mine = [r for r in records if r["bench_config"] == _label(cfg)]
        # onegan_tf.bench times the ceiling conv in the run's compute dtype: each precision has its own.
        ceiling = {prec: statistics.median(r["flop_per_s"] for r in mine
                                           if r.get("what") == "ceiling_conv" and r["precision"] == prec)
                   for prec in precisions}
        loads = [r["loadavg"][0] for r in mine]
        for phase in a.phases.split(","):
            med = {(fw, prec): statistics.median(r["seconds_per_step"] for r in mine if r["framework"] == fw
                                                 and r["precision"] == prec and r.get("phase") == phase)
                   for fw in ("onegan_tf", "torch") for prec in precisions}
            rate = {prec: statistics.median(r["flop_per_s"] for r in mine if r["framework"] == "onegan_tf"
                                            and r["precision"] == prec and r.get("phase") == phase)
                    for prec in precisions}
            rows = [(prec, prec, prec) for prec in precisions]
            if len(precisions) > 1:   # each framework's fastest precision against the other's
                best = {fw: min(precisions, key=lambda p, fw=fw: med[fw, p]) for fw in ("onegan_tf", "torch")}
                rows.append(("best", best["onegan_tf"], best["torch"]))
            for label, tf_prec, torch_prec in rows:
                mine_s, theirs_s = med["onegan_tf", tf_prec], med["torch", torch_prec]
                summary = {"what": "summary", "bench_config": _label(cfg), "phase": phase, "precision": label,
                           "onegan_tf_precision": tf_prec, "torch_precision": torch_prec, "rounds": a.rounds,
                           "steps": cfg["steps"], "warmup": cfg["warmup"],
                           "onegan_tf_seconds_per_step": mine_s, "torch_seconds_per_step": theirs_s,
                           "ratio_onegan_tf_over_torch": mine_s / theirs_s,
                           "loadavg_1min_range": [min(loads), max(loads)],
                           "ceiling_conv_flop_per_s": ceiling[tf_prec], "onegan_tf_flop_per_s": rate[tf_prec],
                           "onegan_tf_share_of_ceiling": rate[tf_prec] / ceiling[tf_prec],
                           "time": _now()}
                if a.out:
                    _emit(summary, a.out, echo=False)
                shown = label if label != "best" else f"best: {tf_prec}/{torch_prec}"
                print(f"{_label(cfg):18} {shown:16} {phase:5} {mine_s:16.3f} {theirs_s:13.3f} "
                      f"{summary['ratio_onegan_tf_over_torch']:15.2f} {min(loads):6.2f}-{max(loads):<6.2f} "
                      f"{ceiling[tf_prec] / 1e9:15.1f} {100 * summary['onegan_tf_share_of_ceiling']:21.0f}%")
    return 0


# The PyTorch settings measured alone against the plain build (for-loop Adam, glibc malloc as started, NCHW,
# 2 threads), then combined: name -> (onegan_torch.py flags, environment).
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"          # Debian libjemalloc2
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"  # Debian libtcmalloc-minimal4
PLAIN = ["--adam=for_loop", "--malloc=default"]
TORCH_SETTINGS = {
    "plain": (PLAIN, {}),
    "adam=foreach": (["--adam=foreach", "--malloc=default"], {}),
    "adam=fused": (["--adam=fused", "--malloc=default"], {}),
    "malloc=tuned (mallopt)": (["--adam=for_loop", "--malloc=tuned"], {}),
    "jemalloc": (PLAIN, {"LD_PRELOAD": JEMALLOC}),
    "tcmalloc": (["--adam=for_loop", "--malloc=tcmalloc"], {}),
    "channels_last": ([*PLAIN, "--channels_last"], {}),
    "threads=1": ([*PLAIN, "--threads=1"], {}),
    "fused + mallopt": (["--malloc=tuned"], {}),
    "fused + jemalloc": (["--malloc=default"], {"LD_PRELOAD": JEMALLOC}),
    "default (bench)": ([], {}),  # fused Adam + tcmalloc
    "default + channels_last": (["--channels_last"], {}),
    "default + threads=1": (["--threads=1"], {}),
}

# onegan_tf's process-level settings, each alone against TensorFlow's and glibc's own defaults
# (ONEGAN_TF_RUNTIME=off), and the runtime's defaults (onegan_tf/runtime.py) as a whole: name -> environment.
OFF = {"ONEGAN_TF_RUNTIME": "off"}
GLIBC_NO_THRESHOLDS = {"MALLOC_MMAP_THRESHOLD_": "2147483647", "MALLOC_TRIM_THRESHOLD_": "2147483647"}
TF_SETTINGS = {
    "off": OFF,
    "runtime defaults": {},
    "glibc thresholds": {**OFF, **GLIBC_NO_THRESHOLDS},
    "TF_CPU_ALLOCATOR_USE_BFC=1": {**OFF, "TF_CPU_ALLOCATOR_USE_BFC": "1"},
    "jemalloc": {**OFF, "LD_PRELOAD": JEMALLOC},
    "tcmalloc": {**OFF, "LD_PRELOAD": TCMALLOC},
    "TF_MKL_OPTIMIZE_PRIMITIVE_MEMUSE=false": {**OFF, "TF_MKL_OPTIMIZE_PRIMITIVE_MEMUSE": "false"},
    "intra=1 inter=2": {**OFF, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2"},
    "intra=2 inter=4": {**OFF, "TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "4"},
    # On top of the runtime's defaults (a variable set here wins over them).
    "runtime + MEMUSE=false": {"TF_MKL_OPTIMIZE_PRIMITIVE_MEMUSE": "false"},
}


def settings(a):
    """Each setting of one framework alone against its baseline, in rounds that rotate their order."""
    table_ = TORCH_SETTINGS if a.framework == "torch" else TF_SETTINGS
    names = a.settings.split(",") if a.settings else list(table_)
    unknown = [n for n in names if n not in table_]
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; {a.framework} has {list(table_)}")
    base = names[0]
    (cfg,) = _parse_configs(a)[:1]
    records = []
    # onegan_tf runs time the ceiling conv themselves; around PyTorch's, it is timed before and after.
    ceiling_runs = [ceiling_alone(a)] if a.framework == "torch" else []
    for i in range(a.rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            if a.framework == "torch":
                flags, env = table_[name]
                out = torch_bench(a, cfg, flags, env)
            else:
                out = tf_bench(a, cfg, table_[name])
            for r in out:
                r = {**r, "setting": name, "env": env if a.framework == "torch" else table_[name], "round": i,
                     "bench_config": _label(cfg), "time": _now()}
                records.append(r)
                _emit(r, a.out)
    print(f"\n{_now()} {a.framework} settings at {_label(cfg)}, steps {cfg['steps']} warm-up {cfg['warmup']}, "
          f"{a.rounds} rounds; speed-up against '{base}' (median over rounds of each run's median)")
    for phase in a.phases.split(","):
        ref = statistics.median(r["seconds_per_step"] for r in records
                                if r["setting"] == base and r.get("phase") == phase)
        for name in names:
            vals = [r["seconds_per_step"] for r in records if r["setting"] == name and r.get("phase") == phase]
            print(f"{phase:4} {name:40} median {statistics.median(vals):.4f} s/step "
                  f"({ref / statistics.median(vals):.2f}x)  runs: " + ", ".join(f"{v:.3f}" for v in vals))
    if a.framework == "torch":
        ceiling_runs.append(ceiling_alone(a))
        for r in ceiling_runs:
            records.append({**r, "setting": "(ceiling conv)", "time": _now()})
            _emit(records[-1], a.out)
    ceilings = [r["flop_per_s"] / 1e9 for r in records if r.get("what") == "ceiling_conv"]
    if ceilings:
        print(f"ceiling conv ({a.ceiling}): median {statistics.median(ceilings):.1f} GFLOP/s, "
              f"range {min(ceilings):.1f} - {max(ceilings):.1f}")
    loads = [r["loadavg"][0] for r in records]
    print(f"load average (1 min) during the runs: {min(loads):.2f} - {max(loads):.2f}")
    return 0


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _emit(record, out, echo=True):
    line = json.dumps(record)
    if echo:
        print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("check", "bench", "settings"))
    venv = os.path.join(ROOT, ".venv/bin/python")
    ap.add_argument("--tf_python",
                    default=os.environ.get("TF_PYTHON", venv if os.path.exists(venv) else sys.executable))
    ap.add_argument("--torch_python", default=os.environ.get("TORCH_PYTHON", "/work/venv-torch/bin/python"))
    ap.add_argument("--image_size", type=int, default=32)
    ap.add_argument("--channel_mult", type=float, default=0.25)
    ap.add_argument("--batch_size", type=int, default=20)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--config", action="append", default=[],
                    help="bench: SIZE:MULT:BATCH:STEPS:WARMUP (repeatable), instead of the five flags above")
    ap.add_argument("--phases", default="IIb")
    ap.add_argument("--precision", default="fp32",
                    help="bench: comma-separated, fp32 and/or bf16 (onegan_tf --mixed_precision=mixed_bfloat16 "
                    "against PyTorch --autocast=bf16); each is run on both sides")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--ceiling", default="20,64,256,256,3",
                    help="onegan_tf.bench --ceiling: the ceiling conv timed in every onegan_tf run")
    ap.add_argument("--framework", choices=("torch", "onegan_tf"), default="torch", help="settings: whose")
    ap.add_argument("--settings", default="",
                    help="settings: comma-separated names (the first is the baseline); default all")
    ap.add_argument("--tf_flag", action="append", default=[], help="extra onegan_tf.bench flag (repeatable)")
    ap.add_argument("--torch_flag", action="append", default=[],
                    help="extra onegan_torch.py bench flag (repeatable), e.g. --torch_flag=--channels_last")
    ap.add_argument("--out", default="", help="append every record (JSON lines) to this file")
    a = ap.parse_args()
    sys.exit({"check": check, "bench": bench, "settings": settings}[a.mode](a))


if __name__ == "__main__":
    main()
