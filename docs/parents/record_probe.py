"""Append one parent probe's line to docs/parents/probes.jsonl (docs/parents/probe.sh runs it after training):
its command, parent and child NMI/ACC beside k-means on pixels (the run's eval/final.json), mask IoU and FID
when scored, which code sets the outline (docs/parents/code_influence.py, run here), wall time and load. The
run directory is only read.

usage: PYTHONPATH=. python docs/parents/record_probe.py --name=NAME --run_dir=RUN --command="..." [--wall_s=S]
"""

from __future__ import annotations

import json
import os
import sys
from typing import Sequence

from absl import flags

from onegan_tf import cli

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from code_influence import code_influence  # noqa: E402

PROBES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probes.jsonl")


def define_flags(fv: flags.FlagValues) -> None:
    for name, help_text in (("name", "Name of the probe."), ("run_dir", "Its run directory."),
                            ("command", "The command that trained it."),
                            ("loadavg_before", "Load average before the run."),
                            ("loadavg_after", "Load average after it.")):
        flags.DEFINE_string(name, "", help_text, flag_values=fv)
    flags.DEFINE_integer("wall_s", 0, "Wall time of the training command (0 = summary.json's).", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    fv = cli.parse(argv, define_flags, usage=__doc__.split("usage: ")[1].split("\n")[0])
    if fv is None:
        return 2
    if not (fv.name and fv.run_dir and fv.command):
        print("--name, --run_dir and --command are required", file=sys.stderr)
        return 2
    with open(os.path.join(fv.run_dir, "eval", "final.json")) as f:
        final = json.load(f)
    with open(os.path.join(fv.run_dir, "summary.json")) as f:
        summary = json.load(f)
    influence = code_influence(fv.run_dir, 500, 0)
    metrics, baselines = final["report"]["metrics"], final["baselines"]
    line = {"name": fv.name, "command": fv.command, "clustering": metrics["clustering"],
            "kmeans_parent": baselines["kmeans_parent"], "kmeans_child": baselines["kmeans_child"],
            "mask_iou": metrics.get("segmentation", {}).get("iou"), "fid": metrics.get("fid", {}).get("fid"),
            "code_influence": {k: influence[k] for k in ("change_parent", "change_child_same_parent", "change_z",
                                                         "G_fg0_input_norms")},
            "wall_s": fv.wall_s or summary.get("wall_s"), "loadavg_before": fv.loadavg_before,
            "loadavg_after": fv.loadavg_after}
    with open(PROBES, "a") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")
    print(json.dumps(line, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
