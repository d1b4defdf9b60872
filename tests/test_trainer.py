"""The training step's restructurings compute what the plain step computes (docs/design.md §5).

The reconstruction paths of Phase IIb run as one call on their stacked sources (`OneGANTrainer._reconstruct`);
here that call's losses and gradients equal those of one `OneGAN.reconstruct` call per path (the step as the
paper writes it), within float32 tolerance. Every weight of Eq. 18 is switched on and unequal, so a path
whose noise, betas or source went to the other path's samples changes a loss.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from onegan_tf.trainer import OneGANTrainer, step_noise
from tests.tiny import tiny_config

WEIGHTS = {"weight_VAE": 0.2, "weight_REC": 10.0, "weight_PER": 0.4, "weight_adv_rec": 0.1, "weight_MSE": 2.5}


def per_path(trainer, batch, sources, paths):
    """The unrestructured paths: the stopped fake encoded once (shared with L_MSE), then one
    `reconstruct` per path."""
    m = trainer.model
    enc_fake = m.encode(sources["rec_fake"], training=True)
    return {p: m.reconstruct(sources[p], *trainer._path_noise(batch, p), training=True,
                             encoded=enc_fake if p == "rec_fake" else None) for p in paths}, enc_fake


@pytest.fixture(scope="module")
def setting():
    keras.utils.set_random_seed(0)
    cfg = tiny_config(**WEIGHTS)
    trainer = OneGANTrainer(cfg)
    trainer.init_clones()
    b, s = cfg.train.batch_size, cfg.model.image_size
    rng = np.random.default_rng(0)
    batch = {k: tf.constant(rng.uniform(-1, 1, (b, s, s, 3)), tf.float32) for k in ("x_c", "x_bg")}
    batch.update(step_noise(cfg.train.seed, 0, b, cfg))
    return trainer, batch


def losses_and_gradients(trainer, batch, batched: bool):
    """Every reconstruction loss of both paths, L_MSE's code distance, and the gradient of their sum with
    respect to everything L_AE trains."""
    paths = ("rec_fake", "rec_real")

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            gen = trainer.model.generate(batch["child"], batch["z"], training=True)
            sources = {"rec_fake": tf.stop_gradient(gen["I"]), "rec_real": batch["x_c"]}
            if batched:
                recs = trainer._reconstruct(batch, list(paths), sources)
                enc_fake = recs["rec_fake"]
            else:
                recs, enc_fake = per_path(trainer, batch, sources, paths)
            terms = {"mu_c": tf.reduce_sum(enc_fake["mu_c"] * gen["v_c"]),
                     "B_fg": tf.reduce_mean(tf.square(enc_fake["B_fg"]))}
            for p in paths:
                terms.update(trainer._reconstruction_losses(p, recs[p], sources[p], gen))
            total = tf.add_n(list(terms.values()))
        return terms, tape.gradient(total, trainer.g_vars)

    terms, grads = run()
    return {k: float(v) for k, v in terms.items()}, [None if g is None else g.numpy() for g in grads]


def test_batched_reconstruction_paths_give_the_losses_and_gradients_of_one_call_per_path(setting):
    trainer, batch = setting
    ref_terms, ref_grads = losses_and_gradients(trainer, batch, batched=False)
    terms, grads = losses_and_gradients(trainer, batch, batched=True)
    assert sorted(terms) == sorted(ref_terms) and len(terms) == 10
    for k in ref_terms:
        np.testing.assert_allclose(terms[k], ref_terms[k], rtol=1e-5, err_msg=k)
    reached = 0
    for v, a, b in zip(trainer.g_vars, ref_grads, grads, strict=True):
        assert (a is None) == (b is None), v.path
        if a is not None:
            reached += 1
            scale = max(float(np.abs(a).max()), 1e-6)
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-4 * scale, err_msg=v.path)
    assert reached > len(trainer.g_vars) // 2
