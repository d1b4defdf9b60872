"""A/B timing of training-step variants, alternated in one invocation (the only way numbers of this
machine compare: its speed drifts 2-4x from day to day and with load).

    python benchmarks/step_levers/ab.py --rounds=3 --out=benchmarks/step_levers/ab_32px.jsonl \\
        --variant='base=/work/wt/speedbase' --variant='step=.' --variant='bf16=.;--mixed_precision=mixed_bfloat16' \\
        -- --image_size=32 --channel_mult=0.25 --batch_size=20 --phases=I,IIb --steps=5 --warmup=2

A variant is `label=CHECKOUT[;ENV=VALUE ...][;--flag=value ...]`: `python -m onegan_tf.bench --what=train`
run with PYTHONPATH=CHECKOUT, the given environment and flags, and the flags after `--` (shared). Each round
runs every variant once, in order, each under `flock LOCK` (one timing at a time on the machine) in a
session of its own whose autogroup and process run at nice -10 (ahead of the other sessions' nice-19 work).
Every bench record goes to `--out` with the variant, round and /proc/loadavg added; the medians over rounds
of each variant's per-phase median s/step, and their ratio to the first variant, are printed at the end
and appended to the same file as `"what": "ab_summary"`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

# With autogroup scheduling, nice only ranks processes within one session: the timed process gets a session
# of its own, and that session's autogroup the same -10.
PRIORITY = 'echo -10 > /proc/self/autogroup; exec nice -n -10 "$@"'


def parse_variant(text: str) -> dict:
    label, _, rest = text.partition("=")
    parts = rest.split(";")
    env = dict(p.split("=", 1) for p in parts[1:] if not p.startswith("--"))
    flags = [p for p in parts[1:] if p.startswith("--")]
    return {"label": label, "checkout": os.path.abspath(parts[0]), "env": env, "flags": flags}


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().strip()


def main() -> int:
    argv = sys.argv[1:]
    shared = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lock", default="/work/runs/s3/measure.lock")
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    variants = [parse_variant(v) for v in args.variant]
    medians: dict = {}
    for rnd in range(args.rounds):
        for v in variants:
            with tempfile.NamedTemporaryFile(suffix=".jsonl") as tmp:
                env = {**os.environ, "PYTHONPATH": v["checkout"], **v["env"]}
                cmd = ["flock", args.lock, "setsid", "bash", "-c", PRIORITY, "_", sys.executable, "-m",
                       "onegan_tf.bench", "--what=train", f"--out={tmp.name}", *shared, *v["flags"]]
                before = loadavg()
                proc = subprocess.run(cmd, env=env, cwd=v["checkout"], capture_output=True, text=True)
                if proc.returncode:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"variant {v['label']} failed in round {rnd}")
                records = [json.loads(line) for line in open(tmp.name)]
            after = loadavg()
            with open(args.out, "a") as f:
                for r in records:
                    r.update(variant=v["label"], round=rnd, variant_spec=v, loadavg_before=before,
                             loadavg_after=after)
                    f.write(json.dumps(r) + "\n")
                    medians.setdefault(v["label"], {}).setdefault(r["phase"], []).append(r["seconds_per_step"])
            print(f"round {rnd} {v['label']:>12}: " + ", ".join(
                f"{r['phase']} {r['seconds_per_step']:.4f}" for r in records) + f"  (load {after})", flush=True)
    base = variants[0]["label"]
    summary = []
    for v in variants:
        for phase, values in medians[v["label"]].items():
            med = statistics.median(values)
            ratio = med / statistics.median(medians[base][phase])
            summary.append({"what": "ab_summary", "variant": v["label"], "phase": phase, "median_s_per_step": med,
                            "rounds": values, f"ratio_to_{base}": ratio})
            print(f"{v['label']:>12} phase {phase:>3}: median {med:.4f} s/step over {len(values)} rounds, "
                  f"{ratio:.3f}x {base}")
    with open(args.out, "a") as f:
        f.writelines(json.dumps(s) + "\n" for s in summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
