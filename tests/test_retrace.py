"""No retracing: each phase's training step is traced once, whatever the batch's values.

A retrace per step would re-run Python and re-optimise the graph every iteration (seconds each on a CPU);
it happens when an input changes its structure, dtype or shape, or when a Python value is passed where a
tensor was expected.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.tiny import tiny_config


@pytest.mark.slow
def test_each_phase_traces_its_step_once():
    import tensorflow as tf

    from onegan_tf.trainer import PHASES, OneGANTrainer, step_noise

    cfg = tiny_config()
    trainer = OneGANTrainer(cfg)
    b, s = cfg.train.batch_size, cfg.model.image_size
    rng = np.random.default_rng(0)
    step = 0
    for phase in PHASES:
        if phase != "I" and not bool(trainer.clones_ready.numpy()):
            trainer.init_clones()
        for _ in range(3):
            batch = {k: tf.constant(rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32)) for k in ("x_c", "x_bg")}
            out = trainer.train_step({**batch, **step_noise(cfg.train.seed, step, b, cfg)}, phase)
            assert np.isfinite(float(out["total/L_GEN" if phase == "I" else "total/L_AE"]))
            step += 1
        assert trainer._untracked.step_fns[phase].experimental_get_tracing_count() == 1, f"phase {phase}"
    assert int(trainer.step.numpy()) == 9
