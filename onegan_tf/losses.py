"""Every loss of OneGAN as a small pure function of tensors (paper Eq. 10-18, supplementary Sec. B).

Each returns a scalar: the mean over the batch it is given of a per-sample quantity, so the trainer turns a
replica's value into its share of the global-batch mean by dividing by the number of replicas. Adversarial
terms are non-saturating BCE-with-logits (docs/design.md §5); a patch discriminator's logits are averaged over patches.
Weights inside an equation (the 10 of Eq. 10-11, the 0.1 of Sec. B) are the paper's and live here; the
weights between equations (Eq. 14, 18) are configurable and applied by the trainer.
"""

from __future__ import annotations

import functools

import tensorflow as tf

REAL, FAKE = 1.0, 0.0
BACKGROUND, OBJECT = 1.0, 0.0   # D_bgB's labels: Eq. 10 scores X_bg with log D and X_c with log(1 - D)


def bce(logits, target: float):
    """Binary cross-entropy with logits against a constant label, averaged over every element."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), tf.constant(target, tf.float32))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def discriminator_terms(D_bgA_real, D_bgA_fake, D_bgB_bg, D_bgB_obj, D_cA_real, D_cA_fake) -> dict:
    """Eq. 10's three terms: L_DbgA (real X_bg vs fake I_bg), L_DbgB (X_bg vs X_c), L_DcA (X_c vs fake I)."""
    return {"L_DbgA": bce(D_bgA_real, REAL) + bce(D_bgA_fake, FAKE),
            "L_DbgB": bce(D_bgB_bg, BACKGROUND) + bce(D_bgB_obj, OBJECT),
            "L_DcA": bce(D_cA_real, REAL) + bce(D_cA_fake, FAKE)}


def discriminator_loss(terms: dict):
    """Eq. 10: L_D = 10 * L_DbgA + L_DbgB + L_DcA."""
    return 10.0 * terms["L_DbgA"] + terms["L_DbgB"] + terms["L_DcA"]


def generator_adversarial_loss(D_bgA_fake, D_bgB_fake, D_cA_fake):
    """Eq. 11: L_G = 10 * BCE(D_bgA(I_bg), real) + BCE(D_bgB(I_bg), background) + BCE(D_cA(I), real)."""
    return 10.0 * bce(D_bgA_fake, REAL) + bce(D_bgB_fake, BACKGROUND) + bce(D_cA_fake, REAL)


def cross_entropy(logits, labels):
    """Softmax cross-entropy of integer labels, averaged over the batch."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32)))


def classification_loss(e_p_hat, e_c_hat, D_cB, parent, child):
    """Eq. 12: L_E = CE(e^_p, phi_p) + CE(e^_c, phi_c) + CE(D_cB(I), phi_c)."""
    return cross_entropy(e_p_hat, parent) + cross_entropy(e_c_hat, child) + cross_entropy(D_cB, child)


def mse(target, prediction):
    """Mean squared error, averaged over every element (per-sample mean, then batch mean)."""
    return tf.reduce_mean(tf.square(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32)))


def code_distance_loss(v_c, mu_c, v_p, mu_p, A_fg, B_fg, A_bg=None, B_bg=None):
    """Eq. 13: L_MSE = MSE(v_c, mu_c) + MSE(v_p, mu_p) + MSE(A_fg, B_fg) + MSE(A_bg, B_bg).

    The generation-side tensors (v, A) are targets (stop-gradient): this loss trains the encoders (docs/design.md §5).
    Without the bypass (Tab. 3b) there is no B_* to match and the pre-image terms are left out.
    """
    sg = tf.stop_gradient
    loss = mse(sg(v_c), mu_c) + mse(sg(v_p), mu_p)
    if B_fg is not None:
        loss += mse(sg(A_fg), B_fg)
    if B_bg is not None:
        loss += mse(sg(A_bg), B_bg)
    return loss


def pose_distance_loss(target_map, target_mirror, map_, mirror):
    """With `--pose_warp --pose_mse`, beside Eq. 13: MSE between the pose of z and the pose read back from the
    fake, compared as sampling maps (B, 2, 3) and mirror weights (B,), which do not wrap around as angles do.
    The z side is the target (stop-gradient)."""
    sg = tf.stop_gradient
    return mse(sg(target_map), map_) + mse(sg(target_mirror), mirror)


def pose_class_loss(pose_class, class_hat):
    """With `--pose_discrete`: cross-entropy between the discrete pose of z (`pose.discrete_pose`, int (B,),
    the target) and E_p's logits over the 8 poses. In L_E on the generated image it makes the generator draw
    the poses apart, as Eq. 12 does for the classes; in `pose_read_loss` on the stopped fake it trains E_p."""
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.stop_gradient(pose_class), tf.cast(class_hat, tf.float32))
    return tf.reduce_mean(ce)


def pose_read_loss(pose_class, fine, class_hat, fine_hat):
    """With `--pose_warp --pose_discrete --pose_mse`, beside Eq. 13: E_p reads the pose of the stopped fake —
    `pose_class_loss` of its logits over the 8 poses, plus MSE between the pose head's residual turn, scale and
    shift on z (B, 4) and E_p's reading of them. The z side is the target (stop-gradient): this trains E_p's
    pose head only."""
    return pose_class_loss(pose_class, class_hat) + mse(tf.stop_gradient(fine), fine_hat)


def code_regularization(v_p, v_c, v_bg):
    """Supplementary Sec. B: L_Rv = ||v_p||^2 + ||v_c||^2 + ||v_bg||^2 (squared norms, batch mean)."""
    sq = lambda v: tf.reduce_mean(tf.reduce_sum(tf.square(tf.cast(v, tf.float32)), axis=-1))  # noqa: E731
    return sq(v_p) + sq(v_c) + sq(v_bg)


def mask_balance(I_m, target: float = 0.5):
    """Supplementary Sec. B, L_MB per mask: |mean(I_m) - 1/2| (the paper's target is 1/2), shape (B,)."""
    I_m = tf.cast(I_m, tf.float32)
    return tf.abs(tf.reduce_mean(I_m, axis=[1, 2, 3]) - target)


def mask_decisiveness(I_m, target: float = 0.5):
    """Supplementary Sec. B, L_MD per mask, with I'_m = 2 I_m - 1, shape (B,):
    |mean(max(0, I'_m)) - t| + |mean(min(0, I'_m)) + (1 - t)|; the paper's t = 1/2.

    A decisive mask with a fraction t of foreground has mean(max(0, I'_m)) = t and mean(min(0, I'_m)) = t - 1,
    which is how a target other than 1/2 generalises the paper's two halves.
    """
    I_signed = 2.0 * tf.cast(I_m, tf.float32) - 1.0
    pos = tf.reduce_mean(tf.maximum(0.0, I_signed), axis=[1, 2, 3])
    neg = tf.reduce_mean(tf.minimum(0.0, I_signed), axis=[1, 2, 3])
    return tf.abs(pos - target) + tf.abs(neg + (1.0 - target))


def mask_regularization(I_m, target: float = 0.5):
    """Supplementary Sec. B: L_RM = L_MB + 0.1 * L_MD, computed per mask then averaged over the batch.

    docs/design.md §5: a batch-level mean lets some classes collapse to all-0 or all-1 masks; the per-image form
    does not.
    """
    return tf.reduce_mean(mask_balance(I_m, target) + 0.1 * mask_decisiveness(I_m, target))


def kl_to_unit_gaussian(mu, sigma, mean=None, per_dimension: bool = False):
    """KL(N(mu, diag(exp(sigma))) || N(mean, I)), summed over dimensions, averaged over the batch.

    sigma is a log-variance (docs/design.md §3): 0.5 * sum(exp(sigma) + (mu - mean)^2 - 1 - sigma).
    `per_dimension` averages over the dimensions instead (the KL divided by the code size), the element mean
    that L1 and MSE take.
    """
    mu, sigma = tf.cast(mu, tf.float32), tf.cast(sigma, tf.float32)
    diff = mu if mean is None else mu - tf.cast(mean, tf.float32)
    reduce = tf.reduce_mean if per_dimension else tf.reduce_sum
    return tf.reduce_mean(0.5 * reduce(tf.exp(sigma) + tf.square(diff) - 1.0 - sigma, axis=-1))


def vae_loss(mu_p, sigma_p, v_p, mu_c, sigma_c, v_c, mu_z, sigma_z, per_dimension: bool = False,
             stop_target: bool = False):
    """Eq. 15: L_VAE = KL(N(mu_p, s_p) || N(v_p, I)) + KL(N(mu_c, s_c) || N(v_c, I)) + KL(N(mu_z, s_z) || N(0, I)).

    The readings of docs/design.md ("Readings of the training step"): each KL summed over its code's dimensions
    and the target means v_p, v_c not stopped, so the embeddings move towards the encoders' means as well.
    `per_dimension` averages each KL over its dimensions; `stop_target` stops v_p, v_c (the encoders alone learn).
    """
    if stop_target:
        v_p, v_c = tf.stop_gradient(v_p), tf.stop_gradient(v_c)
    kl = functools.partial(kl_to_unit_gaussian, per_dimension=per_dimension)
    return kl(mu_p, sigma_p, v_p) + kl(mu_c, sigma_c, v_c) + kl(mu_z, sigma_z)


def l1(target, prediction):
    """Mean absolute error over every element."""
    return tf.reduce_mean(tf.abs(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32)))


def reconstruction_loss(I, I_hat, I_bg=None, I_bg_hat=None, I_m=None, I_m_hat=None):
    """Eq. 16: L_REC = L1(I, I^) for real images; + L1(I_bg, I^_bg) + L1(I_m, I^_m) for fakes."""
    loss = l1(I, I_hat)
    if I_bg is not None:
        loss += l1(I_bg, I_bg_hat) + l1(I_m, I_m_hat)
    return loss


def perceptual_loss(D_cC, D_cC_hat, D_bgC=None, D_bgC_hat=None):
    """Eq. 17: L_PER = L2 between D_cC features of I and I^; + L2 between D_bgC of I_bg and I^_bg for fakes.

    The features of the input are targets (stop-gradient); the discriminator's weights are not in the
    variables this loss updates.
    """
    loss = mse(tf.stop_gradient(D_cC), D_cC_hat)
    if D_bgC is not None:
        loss += mse(tf.stop_gradient(D_bgC), D_bgC_hat)
    return loss


def mode_seeking_loss(I_a, I_b, z_a, z_b, eps: float = 1e-5):
    """Mode seeking (Mao et al., CVPR 2019), not in the paper: mean|z_a - z_b| / mean|I_a - I_b|, batch mean.

    Two images generated from the same classes with different z should differ; minimising the ratio keeps
    the generator from ignoring z. Its weight is 0 (off) in the paper configs.
    """
    di = tf.reduce_mean(tf.abs(tf.cast(I_a, tf.float32) - tf.cast(I_b, tf.float32)), axis=[1, 2, 3])
    dz = tf.reduce_mean(tf.abs(tf.cast(z_a, tf.float32) - tf.cast(z_b, tf.float32)), axis=-1)
    return tf.reduce_mean(dz / (di + eps))
