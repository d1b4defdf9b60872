"""Paper Eq. 10-18 and supplementary Sec. B: every loss against a value computed by hand on a tiny input."""

import math

import numpy as np
import pytest
import tensorflow as tf

from onegan_tf import losses


def softplus(x):
    return np.log1p(np.exp(x))


def value(x):
    return float(np.asarray(x))


def mask(fill, size=4):
    return tf.fill((1, size, size, 1), float(fill))


# ---------------------------------------------------------------------------------------------------------
# Mask regularisation L_RM = L_MB + 0.1 L_MD (supplementary Sec. B), per mask then batch mean.


def test_mask_regularization_of_an_all_half_mask_is_one_tenth():
    # L_MB = |0.5 - 0.5| = 0; I'_m = 0, so mean max(0, I'_m) = 0 and mean min(0, I'_m) = 0: L_MD = 0.5 + 0.5.
    I_m = mask(0.5)
    assert value(losses.mask_balance(I_m)[0]) == 0.0
    assert value(losses.mask_decisiveness(I_m)[0]) == pytest.approx(1.0)
    assert value(losses.mask_regularization(I_m)) == pytest.approx(0.1)


def test_mask_regularization_of_a_balanced_binary_mask_is_zero():
    I_m = tf.reshape(tf.constant([1.0, 0.0] * 8), (1, 4, 4, 1))
    assert value(losses.mask_balance(I_m)[0]) == 0.0
    assert value(losses.mask_decisiveness(I_m)[0]) == 0.0
    assert value(losses.mask_regularization(I_m)) == 0.0


def test_mask_regularization_of_a_quarter_foreground_mask():
    I_m = tf.reshape(tf.constant([1.0, 0.0, 0.0, 0.0] * 4), (1, 4, 4, 1))
    # L_MB = |0.25 - 0.5|; I'_m is 1 on a quarter, -1 elsewhere: L_MD = |0.25 - 0.5| + |-0.75 + 0.5|.
    assert value(losses.mask_balance(I_m)[0]) == pytest.approx(0.25)
    assert value(losses.mask_decisiveness(I_m)[0]) == pytest.approx(0.5)
    assert value(losses.mask_regularization(I_m)) == pytest.approx(0.25 + 0.1 * 0.5)


def test_mask_regularization_is_per_image_not_per_batch():
    # An all-0 and an all-1 mask: the batch mean is 1/2 (a batch-level L_MB would be 0), but each image is
    # unbalanced: L_MB = 0.5 each; L_MD = |0 - .5| + |-1 + .5| = 1 and |1 - .5| + |0 + .5| = 1.
    I_m = tf.concat([mask(0.0), mask(1.0)], axis=0)
    np.testing.assert_allclose(losses.mask_balance(I_m), [0.5, 0.5])
    np.testing.assert_allclose(losses.mask_decisiveness(I_m), [1.0, 1.0])
    assert value(losses.mask_regularization(I_m)) == pytest.approx(0.5 + 0.1 * 1.0)
    assert value(losses.mask_regularization(tf.reshape(I_m, (1, 8, 4, 1)))) == 0.0


def test_mask_regularization_averages_the_per_image_values_over_the_batch():
    I_m = tf.concat([mask(0.5), tf.reshape(tf.constant([1.0, 0.0] * 8), (1, 4, 4, 1)), mask(0.0)], axis=0)
    assert value(losses.mask_regularization(I_m)) == pytest.approx((0.1 + 0.0 + 0.6) / 3)


# ---------------------------------------------------------------------------------------------------------
# Adversarial terms (Eq. 10-11): non-saturating BCE with logits.


def test_bce_of_known_logits():
    logits = tf.constant([[0.0, math.log(3.0)]])
    # sigmoid(ln 3) = 3/4: real -> [-ln 1/2, -ln 3/4], fake -> [-ln 1/2, -ln 1/4].
    assert value(losses.bce(logits, 1.0)) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-6)
    assert value(losses.bce(logits, 0.0)) == pytest.approx((math.log(2) + math.log(4)) / 2, rel=1e-6)
    assert value(losses.bce(tf.constant([50.0]), 1.0)) == pytest.approx(0.0, abs=1e-12)


def test_bce_averages_patch_logits():
    patches = tf.constant(np.arange(-8, 8, dtype="float32").reshape(1, 4, 4, 1))
    assert value(losses.bce(patches, 1.0)) == pytest.approx(softplus(-np.arange(-8, 8)).mean(), rel=1e-6)


def test_discriminator_terms_label_real_background_and_object_as_eq10():
    a, b, c, d, e, f = (tf.constant([[x]]) for x in (0.3, -0.7, 1.1, -0.2, 0.5, -1.5))
    terms = losses.discriminator_terms(a, b, c, d, e, f)
    assert value(terms["L_DbgA"]) == pytest.approx(softplus(-0.3) + softplus(-0.7), rel=1e-6)
    assert value(terms["L_DbgB"]) == pytest.approx(softplus(-1.1) + softplus(-0.2), rel=1e-6)
    assert value(terms["L_DcA"]) == pytest.approx(softplus(-0.5) + softplus(-1.5), rel=1e-6)


def test_discriminator_loss_weights_the_background_adversary_by_ten():
    assert value(losses.discriminator_loss({"L_DbgA": 1.0, "L_DbgB": 2.0, "L_DcA": 3.0})) == 15.0


def test_generator_adversarial_loss_is_eq11():
    out = losses.generator_adversarial_loss(tf.constant([[0.2]]), tf.constant([[-0.4]]), tf.constant([[1.0]]))
    assert value(out) == pytest.approx(10 * softplus(-0.2) + softplus(0.4) + softplus(-1.0), rel=1e-6)


# ---------------------------------------------------------------------------------------------------------
# Classification (Eq. 12), code distance (Eq. 13), code regularisation (Sec. B).


def test_cross_entropy_of_known_logits():
    logits = tf.constant([[0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0]])
    # Uniform: ln 3; second row softmax = [1/2, 1/4, 1/4], label 0: ln 2.
    assert value(losses.cross_entropy(logits, [2, 0])) == pytest.approx((math.log(3) + math.log(2)) / 2, rel=1e-6)


def test_classification_loss_sums_the_three_cross_entropies_of_eq12():
    uniform3, uniform4 = tf.zeros((2, 3)), tf.zeros((2, 4))
    sharp = tf.constant([[0.0, 0.0, 0.0, math.log(2.0)]] * 2)  # softmax of class 3: 2/5
    out = losses.classification_loss(uniform3, uniform4, sharp, parent=[0, 1], child=[3, 3])
    assert value(out) == pytest.approx(math.log(3) + math.log(4) + math.log(5 / 2), rel=1e-6)


def test_code_distance_loss_is_eq13_and_trains_only_the_encoder_side():
    v_c, mu_c = tf.Variable([[1.0, 2.0]]), tf.Variable([[0.0, 0.0]])
    v_p, mu_p = tf.Variable([[3.0]]), tf.Variable([[1.0]])
    A_fg, B_fg = tf.Variable(tf.ones((1, 2, 2, 1))), tf.Variable(tf.zeros((1, 2, 2, 1)))
    A_bg, B_bg = tf.Variable(tf.fill((1, 2, 2, 1), 2.0)), tf.Variable(tf.zeros((1, 2, 2, 1)))
    with tf.GradientTape(persistent=True) as tape:
        loss = losses.code_distance_loss(v_c, mu_c, v_p, mu_p, A_fg, B_fg, A_bg, B_bg)
    assert value(loss) == pytest.approx((1 + 4) / 2 + 4 + 1 + 4)
    for target in (v_c, v_p, A_fg, A_bg):
        assert tape.gradient(loss, target) is None
    np.testing.assert_allclose(tape.gradient(loss, mu_c), [[-1.0, -2.0]])  # d/dmu mean((mu - v)^2)
    np.testing.assert_allclose(tape.gradient(loss, B_fg), np.full((1, 2, 2, 1), -0.5))
    assert value(losses.code_distance_loss(v_c, mu_c, v_p, mu_p, A_fg, None)) == pytest.approx(2.5 + 4)


def test_code_regularization_sums_squared_norms():
    v_p, v_c, v_bg = tf.constant([[3.0, 4.0], [0.0, 0.0]]), tf.constant([[1.0], [1.0]]), tf.constant([[2.0], [0.0]])
    # Batch means of ||v||^2: (25 + 0) / 2, 1, (4 + 0) / 2.
    assert value(losses.code_regularization(v_p, v_c, v_bg)) == pytest.approx(12.5 + 1 + 2)


# ---------------------------------------------------------------------------------------------------------
# VAE (Eq. 15), reconstruction (Eq. 16), perceptual (Eq. 17), mode seeking.


def _kl_closed_form(mu, log_var, mean):
    """KL(N(mu, s^2) || N(m, 1)) = ln(1 / s) + (s^2 + (mu - m)^2) / 2 - 1/2 per dimension."""
    s = np.exp(0.5 * log_var)
    return (np.log(1.0 / s) + (s**2 + (mu - mean) ** 2) / 2 - 0.5).sum(-1).mean()


def test_kl_matches_the_closed_form_for_log_variances():
    rng = np.random.default_rng(0)
    mu, log_var, mean = rng.normal(size=(3, 5)), rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    assert value(losses.kl_to_unit_gaussian(mu, log_var, mean)) == pytest.approx(
        _kl_closed_form(mu, log_var, mean), rel=1e-5)
    assert value(losses.kl_to_unit_gaussian(mu, log_var)) == pytest.approx(_kl_closed_form(mu, log_var, 0.0),
                                                                           rel=1e-5)
    assert value(losses.kl_to_unit_gaussian(mean, np.zeros((3, 5)), mean)) == pytest.approx(0.0, abs=1e-6)
    # One dimension, mu = 1, variance e: 0.5 * (e + 1 - 1 - 1).
    assert value(losses.kl_to_unit_gaussian([[1.0]], [[1.0]])) == pytest.approx(0.5 * (math.e - 1), rel=1e-6)


def test_vae_loss_sums_the_three_kl_terms_of_eq15():
    rng = np.random.default_rng(1)
    a = [rng.normal(size=(2, 3)) for _ in range(8)]
    mu_p, sigma_p, v_p, mu_c, sigma_c, v_c, mu_z, sigma_z = a
    expected = (_kl_closed_form(mu_p, sigma_p, v_p) + _kl_closed_form(mu_c, sigma_c, v_c)
                + _kl_closed_form(mu_z, sigma_z, 0.0))
    assert value(losses.vae_loss(*a)) == pytest.approx(expected, rel=1e-5)


def test_vae_loss_per_dimension_divides_each_kl_by_its_code_size():
    rng = np.random.default_rng(2)
    sizes = {"p": 2, "c": 3, "z": 5}
    codes = {k: [rng.normal(size=(4, d)) for _ in range(3)] for k, d in sizes.items()}
    (mu_p, sigma_p, v_p), (mu_c, sigma_c, v_c), (mu_z, sigma_z, _) = codes.values()
    expected = (_kl_closed_form(mu_p, sigma_p, v_p) / 2 + _kl_closed_form(mu_c, sigma_c, v_c) / 3
                + _kl_closed_form(mu_z, sigma_z, 0.0) / 5)
    got = losses.vae_loss(mu_p, sigma_p, v_p, mu_c, sigma_c, v_c, mu_z, sigma_z, per_dimension=True)
    assert value(got) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("stop_target", [False, True])
def test_vae_loss_reaches_its_target_means_unless_stopped(stop_target):
    rng = np.random.default_rng(3)
    mu_p, sigma_p, mu_c, sigma_c, mu_z, sigma_z = (tf.constant(rng.normal(size=(2, 3)), tf.float32)
                                                    for _ in range(6))
    v_p, v_c = tf.Variable(rng.normal(size=(2, 3)), dtype=tf.float32), tf.Variable(rng.normal(size=(2, 3)),
                                                                                    dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = losses.vae_loss(mu_p, sigma_p, v_p, mu_c, sigma_c, v_c, mu_z, sigma_z, stop_target=stop_target)
    grads = tape.gradient(loss, [v_p, v_c])
    if stop_target:
        assert grads == [None, None]
    else:  # d/dv of 0.5 (mu - v)^2, batch mean: (v - mu) / B
        np.testing.assert_allclose(grads[0].numpy(), (v_p.numpy() - mu_p.numpy()) / 2, rtol=1e-5)
        np.testing.assert_allclose(grads[1].numpy(), (v_c.numpy() - mu_c.numpy()) / 2, rtol=1e-5)


def test_l1_and_mse_of_known_values():
    a, b = tf.constant([[1.0, -1.0], [0.0, 2.0]]), tf.constant([[0.0, 1.0], [0.0, 0.0]])
    assert value(losses.l1(a, b)) == pytest.approx((1 + 2 + 0 + 2) / 4)
    assert value(losses.mse(a, b)) == pytest.approx((1 + 4 + 0 + 4) / 4)


def test_reconstruction_loss_adds_background_and_mask_terms_for_fakes():
    I, I_hat = tf.zeros((1, 2, 2, 3)), tf.fill((1, 2, 2, 3), 0.5)
    I_bg, I_bg_hat = tf.zeros((1, 2, 2, 3)), tf.fill((1, 2, 2, 3), -0.25)
    I_m, I_m_hat = tf.ones((1, 2, 2, 1)), tf.zeros((1, 2, 2, 1))
    assert value(losses.reconstruction_loss(I, I_hat)) == pytest.approx(0.5)
    assert value(losses.reconstruction_loss(I, I_hat, I_bg, I_bg_hat, I_m, I_m_hat)) == pytest.approx(0.5 + 0.25 + 1)


def test_perceptual_loss_is_l2_between_features_with_the_input_side_stopped():
    D_cC, D_cC_hat = tf.Variable(tf.zeros((1, 2, 2, 2))), tf.Variable(tf.fill((1, 2, 2, 2), 2.0))
    D_bgC, D_bgC_hat = tf.Variable(tf.ones((1, 3, 3, 1))), tf.Variable(tf.zeros((1, 3, 3, 1)))
    with tf.GradientTape(persistent=True) as tape:
        real_only = losses.perceptual_loss(D_cC, D_cC_hat)
        fake = losses.perceptual_loss(D_cC, D_cC_hat, D_bgC, D_bgC_hat)
    assert value(real_only) == pytest.approx(4.0)
    assert value(fake) == pytest.approx(4.0 + 1.0)
    assert tape.gradient(fake, D_cC) is None and tape.gradient(fake, D_bgC) is None
    assert tape.gradient(fake, D_cC_hat) is not None


def test_mode_seeking_loss_is_the_ratio_of_code_to_image_distances():
    I_a, I_b = tf.zeros((2, 2, 2, 1)), tf.constant([[[[1.0]] * 2] * 2, [[[0.5]] * 2] * 2])
    z_a, z_b = tf.zeros((2, 4)), tf.constant([[2.0] * 4, [1.0] * 4])
    # Per sample: |dz| / |dI| = 2 / 1 and 1 / 0.5.
    assert value(losses.mode_seeking_loss(I_a, I_b, z_a, z_b, eps=0.0)) == pytest.approx(2.0)
    assert value(losses.mode_seeking_loss(I_a, I_a, z_a, z_b, eps=1e-5)) == pytest.approx(1.5 / 1e-5, rel=1e-5)


def test_losses_are_computed_in_float32_for_half_precision_inputs():
    logits = tf.constant([[0.0, math.log(3.0)]], tf.float16)
    out = losses.bce(logits, 1.0)
    assert out.dtype == tf.float32
    assert value(out) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-3)
    assert losses.mask_regularization(tf.cast(mask(0.5), tf.float16)).dtype == tf.float32
