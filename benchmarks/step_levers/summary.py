"""The medians of the A/B files of this folder, as the table BUILD.md cites.

    python benchmarks/step_levers/summary.py benchmarks/step_levers/ab_*.jsonl > benchmarks/step_levers/summary.txt

Per file, variant and phase: the median over rounds of each run's median s/step, the rounds it rests on,
the steps of every run, the first (traced) step, the load average around the runs, and the ratio to the
file's first variant (`base`, main's commit).
"""

from __future__ import annotations

import json
import os
import statistics
import sys


def main(paths) -> int:
    for path in paths:
        runs = [r for r in map(json.loads, open(path)) if r["what"] == "train"]
        order = list(dict.fromkeys(r["variant"] for r in runs))
        print(f"## {os.path.basename(path)}")
        for phase in dict.fromkeys(r["phase"] for r in runs):
            base = statistics.median(r["seconds_per_step"] for r in runs if r["variant"] == order[0]
                                     and r["phase"] == phase)
            for v in order:
                rs = [r for r in runs if r["variant"] == v and r["phase"] == phase]
                med = statistics.median(r["seconds_per_step"] for r in rs)
                steps = " | ".join(" ".join(f"{s:.3f}" for s in r["step_seconds"]) for r in rs)
                loads = ", ".join(r["loadavg_after"].split()[0] for r in rs)
                first = ", ".join(f"{r['first_step_seconds']:.1f}" for r in rs)
                print(f"phase {phase:>3} {v:>9}: median {med:.4f} s/step ({med / base:.2f}x {order[0]}) over "
                      f"{len(rs)} round(s); first step {first} s; load1 {loads}; steps {steps}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
