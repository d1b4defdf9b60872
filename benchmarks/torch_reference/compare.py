"""onegan_tf's training step against the eager PyTorch reference, on this machine.

Standard library only: it runs each framework in its own virtualenv as a subprocess.

    python benchmarks/torch_reference/compare.py check --image_size=32 --channel_mult=0.25
    python benchmarks/torch_reference/compare.py bench --image_size=32 --channel_mult=0.25 --batch_size=20 \\
        --phases=IIb --rounds=3 --steps=5 --warmup=2 --out=compare.jsonl

`check`: parameter counts per network and forward FLOPs of one step per phase, onegan_tf
(`tf_reference.py`, i.e. `onegan_tf.flops.step_flops`) against the PyTorch build (hooks on every Conv2d and
Linear call of a real step); exits 1 on any difference.
`bench`: `--rounds` rounds, each one run of `python -m onegan_tf.bench --what=train` and one of
`onegan_torch.py bench` at the same config, alternating which goes first (A B, B A, ...) so that the
load of a shared machine falls on both alike; every measurement is printed as a JSON line (and appended to
`--out`) with the load average, then the median over rounds of each framework's s/step and the ratio.
Run from the repository root.
"""

import argparse
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


def bench(a):
    common = [f"--image_size={a.image_size}", f"--channel_mult={a.channel_mult}", f"--batch_size={a.batch_size}",
              f"--phases={a.phases}", f"--steps={a.steps}", f"--warmup={a.warmup}"]
    records = []

    def tf_run():
        with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
            _run([a.tf_python, "-m", "onegan_tf.bench", "--what=train", f"--out={f.name}", *common, *a.tf_flag],
                 {"TF_CPP_MIN_LOG_LEVEL": "3"})
            out = _json_lines(open(f.name).read())
        return [{"framework": "onegan_tf", "phase": r["phase"], "seconds_per_step": r["seconds_per_step"],
                 "images_per_s": r["images_per_s"], "step_seconds": r["step_seconds"], "loadavg": r["loadavg"],
                 "config": r["config"], "host_peak_rss_mib": r.get("host_peak_rss_mib")} for r in out]

    def torch_run():
        extra = ["--channels_last"] if a.channels_last else []
        return _json_lines(_run([a.torch_python, os.path.join(HERE, "onegan_torch.py"), "bench", *common,
                                 f"--threads={a.threads}", *extra, *a.torch_flag]))

    for i in range(a.rounds):
        for fn in ((tf_run, torch_run) if i % 2 == 0 else (torch_run, tf_run)):
            for r in fn():
                r = {**r, "round": i}
                records.append(r)
                _emit(r, a.out)
    print(f"\n{'phase':5} {'framework':10} {'median s/step':>14} {'images/s':>9}   (median over {a.rounds} rounds "
          f"of per-run medians; batch {a.batch_size})")
    for phase in a.phases.split(","):
        med = {}
        for fw in ("onegan_tf", "torch"):
            vals = [r["seconds_per_step"] for r in records if r["framework"] == fw and r["phase"] == phase]
            med[fw] = statistics.median(vals)
            print(f"{phase:5} {fw:10} {med[fw]:14.4f} {a.batch_size / med[fw]:9.1f}   runs: "
                  + ", ".join(f"{v:.3f}" for v in vals))
        print(f"{phase:5} torch/onegan_tf time ratio {med['torch'] / med['onegan_tf']:.3f} "
              f"(onegan_tf is {med['torch'] / med['onegan_tf']:.2f}x the speed of eager PyTorch)")
    loads = [r["loadavg"][0] for r in records]
    print(f"load average (1 min) during the runs: {min(loads):.2f} - {max(loads):.2f}")
    return 0


# One PyTorch setting changed at a time from the plain build, then all of them (the `bench` default).
TORCH_SETTINGS = {
    "plain": ["--adam=for_loop", "--malloc=default"],
    "adam=foreach": ["--adam=foreach", "--malloc=default"],
    "adam=fused": ["--adam=fused", "--malloc=default"],
    "malloc=tuned": ["--adam=for_loop", "--malloc=tuned"],
    "channels_last": ["--adam=for_loop", "--malloc=default", "--channels_last"],
    "default (fused + tuned malloc)": [],
    "default + channels_last": ["--channels_last"],
}


def settings(a):
    """Each PyTorch setting alone against the plain build, in rounds that rotate their order."""
    common = [f"--image_size={a.image_size}", f"--channel_mult={a.channel_mult}", f"--batch_size={a.batch_size}",
              f"--phases={a.phases}", f"--steps={a.steps}", f"--warmup={a.warmup}", f"--threads={a.threads}"]
    names, records = list(TORCH_SETTINGS), []
    for i in range(a.rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            for r in _json_lines(_run([a.torch_python, os.path.join(HERE, "onegan_torch.py"), "bench", *common,
                                       *TORCH_SETTINGS[name]])):
                r = {**r, "setting": name, "round": i}
                records.append(r)
                _emit(r, a.out)
    for phase in a.phases.split(","):
        plain = statistics.median(r["seconds_per_step"] for r in records
                                  if r["setting"] == "plain" and r["phase"] == phase)
        for name in names:
            vals = [r["seconds_per_step"] for r in records if r["setting"] == name and r["phase"] == phase]
            print(f"{phase:4} {name:32} median {statistics.median(vals):.4f} s/step "
                  f"({plain / statistics.median(vals):.2f}x plain)  runs: " + ", ".join(f"{v:.3f}" for v in vals))
    loads = [r["loadavg"][0] for r in records]
    print(f"load average (1 min) during the runs: {min(loads):.2f} - {max(loads):.2f}")
    return 0


def _emit(record, out):
    line = json.dumps(record)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("check", "bench", "settings"))
    venv = os.path.join(ROOT, ".venv/bin/python")
    ap.add_argument("--tf_python", default=os.environ.get("TF_PYTHON", venv if os.path.exists(venv) else sys.executable))
    ap.add_argument("--torch_python", default=os.environ.get("TORCH_PYTHON", "/work/venv-torch/bin/python"))
    ap.add_argument("--image_size", type=int, default=32)
    ap.add_argument("--channel_mult", type=float, default=0.25)
    ap.add_argument("--batch_size", type=int, default=20)
    ap.add_argument("--phases", default="IIb")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--channels_last", action="store_true", help="torch in NHWC memory format")
    ap.add_argument("--tf_flag", action="append", default=[], help="extra onegan_tf.bench flag (repeatable)")
    ap.add_argument("--torch_flag", action="append", default=[],
                    help="extra onegan_torch.py bench flag (repeatable), e.g. --torch_flag=--adam=foreach")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    sys.exit({"check": check, "bench": bench, "settings": settings}[a.mode](a))


if __name__ == "__main__":
    main()
