"""Kill-and-resume (docs/design.md §5: checkpoints hold all clones and the current phase) and refusing to resume a
checkpoint of another configuration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from tiny import REPO, RUN_FLAGS, run_train, tiny_flags, train_command, train_env


def _losses(run_dir: str) -> dict[int, dict]:
    """step -> {loss term: value} from metrics.jsonl; a step logged twice keeps its last record."""
    out = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            out[rec["step"]] = {k: v for k, v in rec.items() if k.startswith("loss/")}
    return out


def _latest_checkpoint(run_dir: str) -> str | None:
    path = os.path.join(run_dir, "ckpt", "checkpoint")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read()
    for line in text.splitlines():
        if line.startswith("model_checkpoint_path:"):
            return line.split('"')[1]
    return None


@pytest.mark.slow
def test_killed_run_resumes_with_the_losses_of_an_uninterrupted_run(reference_run_dir, tmp_path):
    """SIGKILL right after the step-4 checkpoint (end of Phase IIa, clones made), resume with the same command.

    With TF_DETERMINISTIC_OPS=1 the resumed steps 5-8 (Phase IIb) reproduce the uninterrupted run's loss
    values to rtol 1e-5 (observed: bit-identical on CPU), which needs the weights, all optimiser states,
    the clones, the phase and the data and noise streams to resume exactly.
    """
    ref = _losses(reference_run_dir)
    run_dir = str(tmp_path / "run")
    cmd = train_command(*tiny_flags(**RUN_FLAGS, run_dir=run_dir))
    env = train_env(TF_DETERMINISTIC_OPS="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 400
        while _latest_checkpoint(run_dir) is None:
            assert proc.poll() is None, f"run ended before its first checkpoint:\n{proc.stderr.read()[-3000:]}"
            assert time.time() < deadline, "no checkpoint within 400 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert _latest_checkpoint(run_dir).endswith("ckpt-4")
    assert not os.path.exists(os.path.join(run_dir, "summary.json"))
    killed = _losses(run_dir)
    assert max(killed) < 8

    resumed = run_train(*tiny_flags(**RUN_FLAGS, run_dir=run_dir), env=env)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert (summary["start_step"], summary["end_step"], summary["phase"]) == (4, 8, "IIb")
    got = _losses(run_dir)
    assert sorted(got) == sorted(ref) == list(range(1, 9))
    worst = max(abs(got[s][k] - v) / max(abs(v), 1e-12) for s in range(5, 9) for k, v in ref[s].items())
    print(f"resumed vs uninterrupted, steps 5-8: max relative loss difference {worst:.3g}")
    for step in range(5, 9):
        assert sorted(got[step]) == sorted(ref[step])
        for k, v in ref[step].items():
            np.testing.assert_allclose(got[step][k], v, rtol=1e-5, atol=1e-6, err_msg=f"step {step} {k}")


@pytest.mark.slow
def test_refuses_to_resume_a_checkpoint_of_another_config(reference_run_dir):
    """A run directory with a checkpoint of channel_mult 0.125 and seed 7 is not resumed at 0.25 / seed 8."""
    run_dir = reference_run_dir
    before = sorted(os.listdir(os.path.join(run_dir, "ckpt")))
    proc = run_train(*tiny_flags(**{**RUN_FLAGS, "seed": 8}, channel_mult=0.25, run_dir=run_dir), timeout=300)
    assert proc.returncode != 0
    assert "refusing to resume" in proc.stderr
    assert "model.channel_mult: 0.125 (checkpoint) -> 0.25 (now)" in proc.stderr
    assert "train.seed: 7 (checkpoint) -> 8 (now)" in proc.stderr
    assert sorted(os.listdir(os.path.join(run_dir, "ckpt"))) == before
