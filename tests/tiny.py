"""The tiny training setting shared by the training tests: 32x32 images, 1/8 of the paper's widths, 12 child
and 4 parent classes of the synthetic set, batch 4 (one tf.function trace takes ~10 s on a CPU).

`tiny_config(**overrides)` gives the frozen Config (in-process tests) and `tiny_batch(cfg)` a random batch for
it; `tiny_flags(**overrides)` the same setting as command-line flags of `python -m onegan_tf.train`
(subprocess tests); `run_train` runs that CLI.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from onegan_tf.config import Config, DataConfig, ModelConfig, TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODEL = {"image_size": 32, "channel_mult": 0.125, "n_child": 12, "n_parent": 4}
DATA = {"dataset": "synthetic", "synthetic_parents": 4, "synthetic_children_per_parent": 3,
        "synthetic_train_size": 100, "synthetic_test_size": 20, "synthetic_resolution": 64}
TRAIN = {"batch_size": 4, "phase1_steps": 2, "phase2a_steps": 2, "phase2b_steps": 2, "log_every": 1,
         "image_every": 1000, "ckpt_every": 1000, "progress": False}


def tiny_config(**overrides) -> Config:
    """The tiny Config; keyword overrides go to whichever section has the field."""
    sections = {"model": (ModelConfig, dict(MODEL)), "data": (DataConfig, dict(DATA)),
                "train": (TrainConfig, dict(TRAIN))}
    for name, value in overrides.items():
        for cls, kwargs in sections.values():
            if name in {f.name for f in dataclasses.fields(cls)}:
                kwargs[name] = value
                break
        else:
            raise KeyError(f"no config field named {name!r}")
    return Config(**{k: cls(**kwargs) for k, (cls, kwargs) in sections.items()})


def tiny_batch(cfg: Config, seed: int = 0) -> dict:
    """One training batch for `cfg`: uniform random x_c and x_bg in [-1, 1] and the step-0 noise (`step_noise`).
    TensorFlow is imported here, not at the top, so that the subprocess tests do not pay for it."""
    import numpy as np
    import tensorflow as tf

    from onegan_tf.trainer import step_noise

    b, s = cfg.train.batch_size, cfg.model.image_size
    rng = np.random.default_rng(seed)
    real = {k: tf.constant(rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32)) for k in ("x_c", "x_bg")}
    return {**real, **step_noise(cfg.train.seed, 0, b, cfg)}


def tiny_flags(**overrides) -> list[str]:
    """The tiny setting as `--name=value` flags of `python -m onegan_tf.train`."""
    values = {**MODEL, **DATA, **TRAIN, **overrides}
    return [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]


def train_env(**extra) -> dict:
    """Environment of a training subprocess: quiet TF on the CPU, this checkout importable."""
    env = dict(os.environ)
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
                "PYTHONPATH": REPO + os.pathsep + env.get("PYTHONPATH", "")})
    env.update(extra)
    return env


def train_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "onegan_tf.train", *flags]


def run_train(*flags: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the training CLI to completion; output captured as text."""
    return subprocess.run(train_command(*flags), cwd=REPO, env=env or train_env(), capture_output=True,
                          text=True, timeout=timeout)


# The reference run: all three phases, every loss logged, a checkpoint at the end of Phase IIa (step 4), the
# profiler on steps 1-2 and figure grids at steps 3, 6 and 8. Shared by the logging, retrace, resume and
# multi-worker tests through conftest's `reference_run_dir` fixture.
RUN_FLAGS = {"phase1_steps": 2, "phase2a_steps": 2, "phase2b_steps": 4, "ckpt_every": 4, "image_every": 3,
             "profile_steps": "1,3", "seed": 7}
_REFERENCE = {}


def reference_run() -> str:
    """run_dir of one uninterrupted run of RUN_FLAGS with op determinism (made once per test session)."""
    if "run_dir" not in _REFERENCE:
        import tempfile

        run_dir = os.path.join(tempfile.mkdtemp(prefix="onegan-reference-"), "run")
        proc = run_train(*tiny_flags(**RUN_FLAGS, run_dir=run_dir), env=train_env(TF_DETERMINISTIC_OPS="1"))
        if proc.returncode:
            raise RuntimeError(f"reference run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        _REFERENCE["run_dir"] = run_dir
    return _REFERENCE["run_dir"]
