"""FusedAdam (issue 7): the fused ResourceApplyAdam update is keras.optimizers.Adam's, step for step, with the
same state, so checkpoints move between the two."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from onegan_tf.adam import FusedAdam

SHAPES = [(3, 3, 4, 8), (8,), (5, 7), ()]


def _problem(seed):
    rng = np.random.default_rng(seed)
    start = [rng.normal(size=s).astype("float32") for s in SHAPES]
    targets = [rng.normal(size=s).astype("float32") for s in SHAPES]
    return start, targets


def _train(opt, steps, seed=0, variables=None):
    """`steps` updates on a random quartic problem (gradients that change sign and scale); the variables."""
    start, targets = _problem(seed)
    variables = variables or [tf.Variable(s) for s in start]

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.add_n([tf.reduce_sum((v - t) ** 4 + 0.1 * v * t) for v, t in zip(variables, targets)])
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))

    for _ in range(steps):
        step()
    return variables


@pytest.mark.parametrize("kwargs", [{}, {"learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999},
                                    {"learning_rate": 1e-2, "beta_1": 0.0, "beta_2": 0.99, "epsilon": 1e-3}])
@pytest.mark.parametrize("seed", [0, 1])
def test_fused_adam_matches_keras_adam_step_for_step(kwargs, seed):
    steps = 20
    ref_opt, opt = keras.optimizers.Adam(**kwargs), FusedAdam(**kwargs)
    ref, got = _train(ref_opt, steps, seed), _train(opt, steps, seed)
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-6)
    assert int(opt.iterations.numpy()) == steps
    # The slots integrate g and g^2 of a quartic loss, which amplify the last-bit differences of the weights
    # (observed up to 1.5e-5 relative on v after 20 steps): a relative tolerance of 1e-4 on the state.
    for a, b in zip(ref_opt.variables, opt.variables, strict=True):
        assert a.name == b.name
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-7, err_msg=a.path)


def test_fused_adam_under_loss_scaling_matches_keras_adam():
    ref = _train(keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(2e-4, beta_1=0.5)), 5)
    got = _train(keras.optimizers.LossScaleOptimizer(FusedAdam(2e-4, beta_1=0.5)), 5)
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-6)


def test_fused_adam_refuses_amsgrad_and_round_trips_its_config():
    with pytest.raises(ValueError, match="amsgrad=True"):
        FusedAdam(amsgrad=True)
    opt = FusedAdam(2e-4, beta_1=0.5, name="opt_G")
    assert keras.saving.get_registered_name(FusedAdam) == "onegan_tf>FusedAdam"
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(opt))
    assert type(clone) is FusedAdam
    assert clone.get_config() == opt.get_config()


def test_a_keras_adam_checkpoint_restores_into_fused_adam_and_training_continues_the_same(tmp_path):
    ref_opt = keras.optimizers.Adam(1e-2, beta_1=0.5)
    ref_vars = _train(ref_opt, 3)
    path = tf.train.Checkpoint(opt=ref_opt, v=ref_vars).write(str(tmp_path / "ckpt"))

    opt = FusedAdam(1e-2, beta_1=0.5)
    variables = [tf.Variable(tf.zeros_like(v)) for v in ref_vars]
    opt.build(variables)
    tf.train.Checkpoint(opt=opt, v=variables).read(path).assert_consumed()
    assert int(opt.iterations.numpy()) == 3
    for a, b in zip(ref_opt.variables, opt.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
    # Three more steps from the restored state equal three more steps of the original Keras Adam.
    _train(ref_opt, 3, variables=ref_vars)
    _train(opt, 3, variables=variables)
    for a, b in zip(ref_vars, variables, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-6)

    # And back: FusedAdam's checkpoint restores into keras.optimizers.Adam.
    back = tf.train.Checkpoint(opt=opt, v=variables).write(str(tmp_path / "fused"))
    plain = keras.optimizers.Adam(1e-2, beta_1=0.5)
    plain.build(variables)
    tf.train.Checkpoint(opt=plain, v=variables).read(back).assert_consumed()
    for a, b in zip(opt.variables, plain.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
