"""FusedAdam: the fused ResourceApplyAdam update is keras.optimizers.Adam's, step for step, with the same state,
so checkpoints move between the two; a variable that starts training late gets its own bias correction."""

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


def _keras_state(opt):
    """FusedAdam's variables that keras.optimizers.Adam also has (all but the skipped iterations)."""
    return [v for v in opt.variables if v.name != "skipped_iterations"]


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
    for a, b in zip(ref_opt.variables, _keras_state(opt), strict=True):
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
    # Every value of Keras' state arrives (checked below); the skipped iterations stay zero: Keras' count.
    tf.train.Checkpoint(opt=opt, v=variables).read(path)
    assert int(opt.iterations.numpy()) == 3 and not np.any(opt._skipped_iterations.numpy())
    for a, b in zip(ref_opt.variables, _keras_state(opt), strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
    # Three more steps from the restored state equal three more steps of the original Keras Adam.
    _train(ref_opt, 3, variables=ref_vars)
    _train(opt, 3, variables=variables)
    for a, b in zip(ref_vars, variables, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-6)

    # And back: FusedAdam's checkpoint restores into keras.optimizers.Adam (which has no skipped iterations).
    back = tf.train.Checkpoint(opt=opt, v=variables).write(str(tmp_path / "fused"))
    plain = keras.optimizers.Adam(1e-2, beta_1=0.5)
    plain.build(variables)
    tf.train.Checkpoint(opt=plain, v=variables).read(back).assert_existing_objects_matched()
    for a, b in zip(_keras_state(opt), plain.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))


def _steps(opt, variables, grads_of_step, steps):
    """`steps` updates of `variables`; grads_of_step(i) gives step i's gradients (None = no update)."""
    for i in range(steps):
        opt.apply_gradients([(g, v) for g, v in zip(grads_of_step(i), variables) if g is not None])


def test_a_variable_that_starts_late_gets_its_own_bias_correction(tmp_path):
    """`late` gets no gradient for 1,000 iterations (as the encoders' variance heads in Phase I). Its first
    update is then lr in magnitude, as Adam's first step is, not sqrt(1 - beta_2^t) / (1 - beta_1^t) *
    (1 - beta_1) / sqrt(1 - beta_2) ~ 10 lr (beta_1 = 0.5) with the shared count; and from then on it moves as
    under a fresh optimiser. The state survives a checkpoint."""
    lr, kwargs = 1e-3, {"beta_1": 0.5, "beta_2": 0.999}
    rng = np.random.default_rng(0)
    g_early = tf.constant(rng.normal(size=(4,)).astype("float32"))
    g_late = [tf.constant(rng.normal(size=(3,)).astype("float32")) for _ in range(5)]
    start = rng.normal(size=(3,)).astype("float32")

    opt = FusedAdam(lr, **kwargs)
    early, late = tf.Variable(tf.zeros(4)), tf.Variable(start)
    opt.build([early, late])
    step = tf.function(lambda gs: opt.apply_gradients([(g, v) for g, v in zip(gs, (early, late)) if g is not None]))
    for _ in range(1000):
        step([g_early, None])
    path = tf.train.Checkpoint(opt=opt).write(str(tmp_path / "ckpt"))
    restored = FusedAdam(lr, **kwargs)
    restored.build([early, late])
    tf.train.Checkpoint(opt=restored).read(path).assert_consumed()
    assert int(restored.iterations.numpy()) == 1000

    before = late.numpy()
    restored.apply_gradients([(g_early, early), (g_late[0], late)])
    np.testing.assert_allclose(np.abs(late.numpy() - before), lr, rtol=1e-3)

    fresh_opt, fresh = FusedAdam(lr, **kwargs), tf.Variable(start)
    _steps(fresh_opt, [fresh], lambda i: [g_late[i]], len(g_late))
    _steps(restored, [early, late], lambda i: [g_early, g_late[i + 1]], len(g_late) - 1)
    np.testing.assert_allclose(late.numpy(), fresh.numpy(), rtol=0, atol=1e-6)


def test_a_variable_that_pauses_after_starting_keeps_keras_adams_shared_count():
    """Only variables not yet updated count their own steps: one that skips iterations later is updated as
    keras.optimizers.Adam updates it."""
    start, targets = _problem(0)
    rng = np.random.default_rng(1)
    grads = [[tf.constant(rng.normal(size=s).astype("float32")) for s in SHAPES] for _ in range(8)]

    def grads_of_step(i):  # variable 1 pauses on steps 2-4, variable 2 on odd steps
        return [g if not ((k == 1 and 2 <= i <= 4) or (k == 2 and i % 2)) else None for k, g in enumerate(grads[i])]

    got, ref = [tf.Variable(s) for s in start], [tf.Variable(s) for s in start]
    opt, ref_opt = FusedAdam(1e-2, beta_1=0.5), keras.optimizers.Adam(1e-2, beta_1=0.5)
    opt.build(got)
    ref_opt.build(ref)
    _steps(opt, got, grads_of_step, len(grads))
    _steps(ref_opt, ref, grads_of_step, len(grads))
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-6)
