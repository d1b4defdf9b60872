"""No retracing: each phase's training step is traced once, whatever the batch's values.

A retrace per step would re-run Python and re-optimise the graph every iteration (seconds each on a CPU);
it happens when an input changes its structure, dtype or shape, or when a Python value is passed where a
tensor was expected. Checked on the shared reference run (tiny.RUN_FLAGS: 2, 2 and 4 steps of Phases I,
IIa and IIb through the training loop's distributed dataset), which records its tracing counts.
"""

from __future__ import annotations

import json
import os

import pytest
from tiny import RUN_FLAGS


@pytest.mark.slow
def test_each_phase_traces_its_step_once(reference_run_dir):
    with open(os.path.join(reference_run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert [RUN_FLAGS[f"phase{p}_steps"] for p in ("1", "2a", "2b")] == [2, 2, 4]  # a retrace would show
    assert summary["end_step"] == 8
    assert summary["traces"] == {"I": 1, "IIa": 1, "IIb": 1}
