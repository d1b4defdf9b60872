"""The advertised speed settings train: one tiny step under `--mixed_precision=mixed_bfloat16`,
`mixed_float16` (with loss scaling) and `--jit_compile` gives finite losses and moves the weights of both
updates (the generators' and the discriminators').

The mixed-precision steps run eagerly and cover every path (Phase IIb); under float16 the first steps may
overflow at the initial loss scale, which dynamic loss scaling answers by skipping the update and halving the
scale, so that case steps until the generators' update is applied. The XLA step, which has to be traced and
compiled, is one Phase I step.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from onegan_tf.trainer import OneGANTrainer, step_noise
from tests.tiny import tiny_config


@pytest.fixture
def policy():
    """Restores Keras' global dtype policy, which `train.train` sets from --mixed_precision."""
    before = keras.mixed_precision.dtype_policy()
    yield keras.mixed_precision.set_dtype_policy
    keras.mixed_precision.set_dtype_policy(before)


@pytest.fixture
def eagerly():
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


def one_step(cfg, phase, max_steps=1):
    """Steps (at most `max_steps`) until the generators' update moves a weight -> (trainer, terms, moved, steps)."""
    keras.utils.set_random_seed(0)
    tr = OneGANTrainer(cfg)
    if phase != "I":
        tr.init_clones()
    b, s = cfg.train.batch_size, cfg.model.image_size
    rng = np.random.default_rng(0)
    batch = {k: tf.constant(rng.uniform(-1, 1, (b, s, s, 3)), tf.float32) for k in ("x_c", "x_bg")}
    batch.update(step_noise(cfg.train.seed, 0, b, cfg))
    watched = {"G_fg2": tr.model.G_fg2.trainable_variables[0], "D_c": tr.model.D_c.own_variables[0]}
    before = {k: v.numpy().copy() for k, v in watched.items()}
    for steps in range(1, max_steps + 1):
        terms = {k: float(v) for k, v in tr.train_step(batch, phase).items()}
        moved = {k: float(np.abs(v.numpy() - before[k]).max()) for k, v in watched.items()}
        if moved["G_fg2"] > 0:
            break
    return tr, terms, moved, steps


@pytest.mark.parametrize("precision, compute", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_a_mixed_precision_step_of_every_path_is_finite_and_trains(policy, eagerly, precision, compute):
    policy(precision)
    cfg = tiny_config(mixed_precision=precision)
    scaled = precision == "mixed_float16"
    tr, terms, moved, steps = one_step(cfg, phase="IIb", max_steps=16 if scaled else 1)
    assert tr.model.G_fg1.compute_dtype == compute and tr.model.G_fg1.variable_dtype == "float32"
    assert isinstance(tr.opt_G, keras.optimizers.LossScaleOptimizer) == scaled
    assert "total/L_AE" in terms and all(np.isfinite(v) for v in terms.values()), terms
    assert moved["G_fg2"] > 0 and moved["D_c"] > 0
    if scaled:   # every skipped step halved the scale; the applied one left it
        assert float(tr.opt_G.dynamic_scale.numpy()) == tr.opt_G.initial_scale / 2 ** (steps - 1)


@pytest.mark.slow
def test_an_xla_compiled_step_is_finite_and_trains():
    cfg = tiny_config(jit_compile=True)
    _, terms, moved, _ = one_step(cfg, phase="I")
    assert "total/L_GEN" in terms and all(np.isfinite(v) for v in terms.values()), terms
    assert moved["G_fg2"] > 0 and moved["D_c"] > 0
