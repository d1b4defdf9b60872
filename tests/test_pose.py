"""`--pose_warp` (docs/design.md §3, onegan_tf/pose.py): the foreground drawn in a canonical pose and placed by a
pose taken from z. Off, nothing changes; on, the identity pose reproduces the unwarped drawing, a turn turns
it, a mirror mirrors it, and the generators' gradient reaches the pose head."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import tiny_batch, tiny_config

from onegan_tf import flops, losses, networks, pose
from onegan_tf.config import ConfigError, ModelConfig
from onegan_tf.model import OneGAN, inference_betas
from onegan_tf.trainer import OneGANTrainer

BASE = dict(image_size=32, channel_mult=0.125, n_child=6, n_parent=3)


def pose_of(theta=0.0, phi=0.0, rho=0.0, t_x=0.0, t_y=0.0, batch=2):
    return tf.constant([[theta, phi, rho, t_x, t_y]] * batch, tf.float32)


def phase_i_terms(**overrides) -> dict:
    """The logged terms of one Phase I step of the tiny setting with `overrides`, from seed 0: the same weights
    and noise wherever the networks are the same."""
    cfg = tiny_config(**overrides)
    keras.utils.set_random_seed(0)
    return OneGANTrainer(cfg).train_step(tiny_batch(cfg), phase="I")


def random_masks(batch=2, side=8, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (batch, side, side, 1)).astype("float32")


def test_pose_warp_off_builds_g_fg2_as_before():
    """Off (the default), G_fg2 has no pose head, takes three inputs, and every network keeps its FLOPs."""
    off, on = OneGAN(ModelConfig(**BASE)), OneGAN(ModelConfig(**BASE, pose_warp=True))
    assert not hasattr(off.G_fg2, "pose") and len(networks.network_inputs("G_fg2", off.cfg)) == 3
    with pytest.raises(ValueError, match=r"without pose_warp is called on \(C_fg0, v_p, v_c\); got 4"):
        off.G_fg2(networks.network_inputs("G_fg2", on.cfg))
    counts_off, counts_on = off.parameter_counts(), on.parameter_counts()
    head = (on.cfg.d_z + 1) * len(pose.POSE_PARAMETERS)
    assert counts_on == {**counts_off, "G_fg2": counts_off["G_fg2"] + head}
    table_off, table_on = flops.network_table(off), flops.network_table(on)
    assert table_on == {**table_off, "G_fg2": table_off["G_fg2"] + 2 * on.cfg.d_z * len(pose.POSE_PARAMETERS)}


def test_identity_pose_reproduces_the_unwarped_drawing():
    """At initialisation (turn_init 0) the head gives the identity pose for every z, so a model with the warp
    generates what the same weights generate without it."""
    off, on = OneGAN(ModelConfig(**BASE)), OneGAN(ModelConfig(**BASE, pose_warp=True))
    for key in networks.NETWORK_NAMES:
        src = off.networks[key].weights
        dst = [w for w in on.networks[key].weights if "pose" not in w.path]
        for a, b in zip(src, dst, strict=True):
            b.assign(a)
    child, z = tf.constant([0, 2, 4, 5]), tf.random.stateless_normal((4, on.cfg.d_z), seed=(1, 2))
    a, b = off.generate(child, z), on.generate(child, z)
    np.testing.assert_allclose(np.asarray(b["I_m"]), np.asarray(a["I_m"]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(b["I"]), np.asarray(a["I"]), atol=1e-6)
    x = random_masks()
    np.testing.assert_array_equal(np.asarray(pose.place(x, pose_of())), x)


@pytest.mark.parametrize("theta,k", [(np.pi / 2, 1), (np.pi, 2), (-np.pi / 2, -1)])
def test_a_turn_of_the_pose_turns_the_mask(theta, k):
    x = random_masks()
    y = np.asarray(pose.place(x, pose_of(theta=theta)))
    np.testing.assert_allclose(y, np.rot90(x, k, axes=(1, 2)), atol=1e-5)


def test_a_mirror_of_the_pose_mirrors_the_mask_and_a_scale_shrinks_it():
    x = random_masks()
    mirrored = np.asarray(pose.place(x, pose_of(phi=np.pi)))
    np.testing.assert_allclose(mirrored, x[:, :, ::-1], atol=1e-5)
    # Half-way the two whole outlines are blended, never one narrowed.
    half = np.asarray(pose.place(x, pose_of(phi=np.pi / 2)))
    np.testing.assert_allclose(half, (x + x[:, :, ::-1]) / 2, atol=1e-5)
    # Reading the canonical drawing at twice the distance draws it at half the size: the border goes to zero.
    disc = np.zeros((1, 16, 16, 1), "float32")
    disc[0, 4:12, 4:12] = 1.0
    small = np.asarray(pose.place(disc, pose_of(rho=np.log(2.0), batch=1)))
    assert small.sum() == pytest.approx(disc.sum() / 4, rel=0.05)
    assert small[0, :5].sum() == 0 and small[0, 11:].sum() == 0


def test_the_generators_gradient_reaches_the_pose_head():
    model = OneGAN(ModelConfig(**BASE, pose_warp=True))
    child, z = tf.constant([0, 3]), tf.random.stateless_normal((2, model.cfg.d_z), seed=(3, 4))
    ramp = np.broadcast_to(np.linspace(0, 1, 32, dtype="float32")[:, None, None], (2, 32, 32, 1))
    target = tf.constant(ramp)  # the mask's gradient along the image pulls the pose
    head = model.G_fg2.pose.trainable_variables
    assert len(head) == 4   # turn and place, kernel and bias each
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(model.generate(child, z, training=True)["I_m"] - target))
    grads = tape.gradient(loss, head)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_turn_init_spreads_the_turns_and_nothing_else():
    """Through build_networks, as the trainer builds G_fg2; and the layer's own config keeps the setting."""
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(**BASE, pose_warp=True, pose_turn_init=2.0)
    layer = networks.build_networks(cfg, names=("G_fg2",))["G_fg2"].pose
    p = np.asarray(layer.pose(tf.random.stateless_normal((4000, cfg.d_z), seed=(5, 6))))
    assert np.std(np.asarray(layer.turn.kernel)) == pytest.approx(2.0 / cfg.d_z ** 0.5, rel=0.15)
    assert np.std(p[:, :2], axis=0) == pytest.approx([2.0, 2.0], rel=0.3)
    np.testing.assert_array_equal(p[:, 2:], 0.0)
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert (again.d_z, again.turn_init) == (cfg.d_z, 2.0)


def test_the_pose_head_round_trips_through_a_keras_file(tmp_path):
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(**BASE, pose_warp=True, pose_turn_init=1.0)
    G_fg2 = networks.build_networks(cfg, names=("G_fg2",))["G_fg2"]
    G_fg2.pose.turn.bias.assign([0.3, 0.5])
    G_fg2.pose.place.bias.assign([-0.2, 0.1, -0.1])
    rng = np.random.default_rng(0)
    inputs = tuple(rng.normal(size=x.shape).astype("float32") for x in networks.network_inputs("G_fg2", cfg, 2))
    G_fg2.save(tmp_path / "G_fg2.keras")
    loaded = keras.saving.load_model(tmp_path / "G_fg2.keras")
    assert loaded.pose_warp and loaded.pose.turn_init == 1.0
    for key, value in G_fg2(inputs).items():
        np.testing.assert_allclose(np.asarray(loaded(inputs)[key]), np.asarray(value), atol=1e-6)


def test_pose_turn_init_without_pose_warp_is_refused():
    with pytest.raises(ConfigError, match=r"pose_turn_init=1.0 needs pose_warp=True \(--pose_warp\)"):
        ModelConfig(**BASE, pose_turn_init=1.0)
    with pytest.raises(ConfigError, match="pose_turn_init=-1.0 must be >= 0"):
        ModelConfig(**BASE, pose_warp=True, pose_turn_init=-1.0)


@pytest.mark.slow
def test_a_phase_iib_step_with_the_warp_trains_the_pose_head_and_logs_finite_terms():
    """The whole step (generation, both reconstruction paths with z^'s pose) runs with the warp on, and the
    generator update moves the pose head."""
    cfg = tiny_config(pose_warp=True, pose_turn_init=1.0)
    keras.utils.set_random_seed(0)
    trainer = OneGANTrainer(cfg)
    trainer.init_clones()
    head = [np.array(v) for v in trainer.model.G_fg2.pose.weights]
    out = trainer.train_step(tiny_batch(cfg), phase="IIb")
    assert all(np.isfinite(float(v)) for v in out.values())
    assert all(not np.array_equal(a, np.array(v)) for a, v in zip(head, trainer.model.G_fg2.pose.weights))


def test_the_frozen_pose_head_gives_the_same_pose_and_passes_gradient_only_to_z():
    """`--pose_mse` reads the pose of E_p's mu_z through the head with its weights stopped: same values, and the
    loss on them trains what produced z, never the head (which could otherwise satisfy it by ignoring z)."""
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(**BASE, pose_warp=True, pose_turn_init=1.0)
    head = networks.build_networks(cfg, names=("G_fg2",))["G_fg2"].pose
    head.place.bias.assign([0.1, -0.2, 0.3])
    z = tf.Variable(tf.random.stateless_normal((3, cfg.d_z), seed=(1, 2)))
    with tf.GradientTape() as tape:
        frozen = head.pose(z, frozen=True)
        loss = tf.reduce_sum(tf.square(frozen))
    np.testing.assert_allclose(np.asarray(frozen), np.asarray(head.pose(z)), atol=1e-6)
    grads = tape.gradient(loss, [z] + head.trainable_variables)
    assert float(tf.reduce_max(tf.abs(grads[0]))) > 0
    assert all(g is None for g in grads[1:])


def test_the_pose_distance_is_zero_for_the_same_pose_and_trains_the_read_side_only():
    target = pose.pose_matrix(pose_of(theta=0.7, phi=0.4, rho=-0.2, t_x=0.1))
    same = [tf.Variable(t) for t in pose.pose_matrix(pose_of(theta=0.7, phi=0.4, rho=-0.2, t_x=0.1))]
    assert float(losses.pose_distance_loss(*target, *same)) == pytest.approx(0.0, abs=1e-10)
    read = [tf.Variable(t) for t in pose.pose_matrix(pose_of(theta=0.7 + np.pi, phi=0.4, rho=-0.2, t_x=0.1))]
    target_vars = [tf.Variable(t) for t in target]
    with tf.GradientTape() as tape:
        loss = losses.pose_distance_loss(*target_vars, *read)
    assert float(loss) > 0.1   # half a turn away
    grads = tape.gradient(loss, target_vars + read)
    assert all(g is None for g in grads[:2]) and all(g is not None for g in grads[2:])


def test_pose_mse_without_pose_warp_is_refused():
    with pytest.raises(ConfigError, match=r"pose_mse=True needs pose_warp=True \(--pose_warp\)"):
        ModelConfig(**BASE, pose_mse=True)


@pytest.mark.slow
def test_a_phase_i_step_with_pose_mse_adds_the_pose_distance_to_l_mse():
    """Same weights, same noise: L_MSE with `--pose_mse` exceeds L_MSE without it by the pose distance, which
    is positive while E_p has not learned to read the pose."""
    out = {pose_mse: float(phase_i_terms(pose_warp=True, pose_turn_init=1.0, pose_mse=pose_mse)["gen/L_MSE"])
           for pose_mse in (False, True)}
    assert out[True] > out[False] + 1e-4


# -- --pose_discrete: the quarter turns and the mirror as one of 8 poses, read back by E_p as a class --------


DISCRETE = dict(pose_warp=True, pose_mse=True, pose_discrete=True)


def test_a_discrete_pose_turns_and_mirrors_by_the_largest_of_zs_first_eight():
    """z with its k-th component largest places the drawing k mod 4 quarter turns round, then mirrors it when
    k >= 4, exactly (a quarter turn or a mirror maps the pixel grid onto itself); the rest of z does not pick
    it."""
    head = pose.PoseWarp(16, discrete=True)
    head.build((None, 16))
    x = random_masks(batch=8, seed=1)
    z = np.full((8, 16), -1.0, "float32")
    z[:, 8:] = 5.0                          # larger, but past the first 8: not read by the discrete pose
    z[np.arange(8), np.arange(8)] = 1.0
    np.testing.assert_array_equal(np.asarray(pose.discrete_pose(z)), np.arange(8))
    y = np.asarray(head(([x], tf.constant(z)))[0])
    for k in range(8):
        turned = np.rot90(x[k], k % 4, axes=(0, 1))
        np.testing.assert_allclose(y[k], turned[:, ::-1] if k >= 4 else turned, atol=1e-5, err_msg=f"pose {k}")
    # A pose given to the call replaces the pose of z: here every image in pose 2 (a half turn).
    given = pose.compose_pose(tf.fill((8,), 2), tf.zeros((8, 4)))
    np.testing.assert_allclose(np.asarray(head(([x], tf.constant(z)), pose=given)[0]),
                               np.rot90(x, 2, axes=(1, 2)), atol=1e-5)


def test_the_discrete_pose_is_uniform_and_the_head_keeps_only_a_residual_turn():
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(**BASE, **DISCRETE, pose_turn_init=0.5)
    head = networks.build_networks(cfg, names=("G_fg2",))["G_fg2"].pose
    assert tuple(head.turn.kernel.shape) == (cfg.d_z, 1)
    z = tf.random.stateless_normal((8000, cfg.d_z), seed=(7, 8))
    counts = np.bincount(np.asarray(pose.discrete_pose(z)), minlength=8) / 8000
    np.testing.assert_allclose(counts, 1 / 8, atol=0.02)
    fine, full = np.asarray(head.fine(z)), np.asarray(head.pose(z))
    assert fine.shape == (8000, 4)
    assert np.std(fine[:, 0]) == pytest.approx(0.5, rel=0.2)      # the residual turn, spread by turn_init
    k = np.asarray(pose.discrete_pose(z))
    np.testing.assert_allclose(full[:, 0] - fine[:, 0], (k % 4) * np.pi / 2, atol=1e-5)
    np.testing.assert_allclose(full[:, 1], (k // 4) * np.pi, atol=1e-6)
    np.testing.assert_array_equal(full[:, 2:], fine[:, 1:])
    again = keras.layers.deserialize(keras.layers.serialize(head))
    assert again.discrete and np.asarray(again.pose(z[:4])).shape == (4, 5)


def test_e_p_reads_the_discrete_pose_with_its_own_head_and_the_reconstruction_path_places_by_it():
    """E_p gets a Linear head on h_z (8 logits + 4 residuals, nothing else changes), it round-trips through its
    config, and the reconstruction path places the foreground by what it reads: the mask reconstructed from the
    pre-image with the head's bias set to pose 2 is the one with pose 0 turned by half a turn."""
    off, on = OneGAN(ModelConfig(**BASE, pose_warp=True)), OneGAN(ModelConfig(**BASE, **DISCRETE))
    assert on.parameter_counts()["E_p"] == off.parameter_counts()["E_p"] + (on.E_p.hidden + 1) * 12
    again = keras.layers.deserialize(keras.layers.serialize(on.E_p))
    assert again.pose_classes == 8
    image = tf.random.stateless_uniform((2, 32, 32, 3), seed=(1, 2), minval=-1, maxval=1)
    masks = {}
    for k in (0, 2):
        on.E_p.pose_hat.kernel.assign(tf.zeros_like(on.E_p.pose_hat.kernel))
        on.E_p.pose_hat.bias.assign(tf.one_hot(k, 12) * 10.0)
        # The pre-image alone (beta3 = 0), so that only the placing depends on the pose read.
        out = on.reconstruct(image, betas={**inference_betas(2), "beta3": tf.zeros((2,))})
        assert np.asarray(tf.argmax(out["pose_class_hat"], -1)).tolist() == [k, k]
        masks[k] = np.asarray(out["I_m_hat"])
    np.testing.assert_allclose(masks[2], np.rot90(masks[0], 2, axes=(1, 2)), atol=1e-5)
    assert off.read_pose(off.encode(image)) is None      # without --pose_discrete: the pose of z^


def test_the_pose_read_loss_is_low_for_the_right_reading_and_trains_the_read_side_only():
    target_class, target_fine = tf.Variable([2, 6]), tf.Variable([[0.1, 0.0, 0.2, -0.1]] * 2)
    right = tf.Variable(tf.one_hot([2, 6], 8) * 10.0)
    assert float(losses.pose_read_loss(target_class, target_fine, right, target_fine)) < 1e-3
    wrong, fine_hat = tf.Variable(tf.one_hot([3, 1], 8) * 10.0), tf.Variable(tf.zeros((2, 4)))
    with tf.GradientTape() as tape:
        loss = losses.pose_read_loss(target_class, target_fine, wrong, fine_hat)
    assert float(loss) > 5.0
    g_fine_target, g_class, g_fine = tape.gradient(loss, [target_fine, wrong, fine_hat])
    assert g_fine_target is None and g_fine is not None
    assert g_class[0, 2] < 0 and g_class[0, 3] > 0     # descent raises the right class and lowers the wrong one


def test_pose_discrete_without_pose_warp_and_pose_mse_or_with_a_short_z_is_refused():
    for flags_ in (dict(pose_discrete=True), dict(pose_warp=True, pose_discrete=True)):
        with pytest.raises(ConfigError, match=r"pose_discrete=True needs pose_warp=True and pose_mse=True"):
            ModelConfig(**BASE, **flags_)
    with pytest.raises(ConfigError, match="from z's first 8 components; d_z=4"):
        ModelConfig(**BASE, **DISCRETE, d_z=4)


@pytest.mark.slow
def test_a_phase_i_step_with_discrete_pose_mse_adds_the_pose_reading_to_l_mse():
    """With --pose_discrete, L_MSE adds the pose reading's loss (about log 8 for an E_p that has not learned the
    poses) to what it is without any pose term."""
    without, with_ = (float(phase_i_terms(**extra)["gen/L_MSE"]) for extra in ({}, {**DISCRETE, "pose_turn_init": 0.5}))
    assert with_ > without + 1.0


def test_unplace_discrete_inverts_each_of_the_8_poses_and_the_reconstruction_unplaces_the_bypass():
    """A feature map placed in pose k and un-placed by k is itself again, exactly; on the reconstruction path the
    bypass B_fg is un-placed by the pose E_p reads (here pose 6 set through the head's bias), so that an image
    whose bypass is the canonical one placed in pose 6 gives G_fg1 the canonical bypass."""
    x = random_masks(batch=8, side=6, seed=2)
    placed = pose.place(x, pose.compose_pose(tf.range(8), tf.zeros((8, 4))))
    np.testing.assert_allclose(np.asarray(pose.unplace_discrete(placed, tf.range(8))), x, atol=1e-5)
    model = OneGAN(ModelConfig(**BASE, **DISCRETE))
    model.E_p.pose_hat.kernel.assign(tf.zeros_like(model.E_p.pose_hat.kernel))
    model.E_p.pose_hat.bias.assign(tf.one_hot(6, 12) * 10.0)
    image = tf.random.stateless_uniform((2, 32, 32, 3), seed=(3, 4), minval=-1, maxval=1)
    enc = model.encode(image)
    out = model.reconstruct(image, encoded=enc)     # inference: beta3 = 1, the bypass alone
    expected = pose.unplace_discrete(enc["B_fg"], tf.fill((2,), 6))
    np.testing.assert_allclose(np.asarray(out["A_fgmix"]), np.asarray(expected), atol=1e-5)


@pytest.mark.slow
def test_with_pose_discrete_l_e_adds_the_pose_class_of_the_generated_image():
    """L_E (not stopped: it trains the generators) gains the pose class loss with --pose_discrete: with the same
    weights and noise, L_E with the flag minus L_E without it is that loss on E_p's reading of the fakes."""
    without, with_ = (float(phase_i_terms(**extra)["gen/L_E"]) for extra in ({"pose_warp": True, "pose_mse": True},
                                                                             DISCRETE))
    assert with_ > without + 1.0    # about log 8 for an E_p that has not learned the poses
