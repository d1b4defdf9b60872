"""An exponential moving average of the generators' weights (not in the paper; StyleGAN2-ADA's `G_ema`).

Every modern GAN codebase samples from a running average of the generator rather than from its last
iterate: the average smooths the oscillation of adversarial training and gives better images at no training
cost. `GeneratorEMA` holds a shadow copy of the embeddings and generators (V_*, G_*), the networks of the
generation path (Eq. 1-5); the encoders and discriminators have no shadow, they are used as trained.

The decay follows StyleGAN2-ADA's `training_loop.py`: the half-life is given in images (`ema_kimg`
thousands), and during a ramp-up it is at most `ema_rampup` times the images seen so far, so early shadows
follow the fast-moving weights instead of averaging in the random initialisation:

    ema_nimg = min(ema_kimg * 1000, images_seen * ema_rampup)      (ema_kimg * 1000 without a ramp-up)
    beta     = 0.5 ** (batch_size / ema_nimg)                        (images_seen before this step's batch)
    shadow   = w + (shadow - w) * beta                               (a lerp from w towards the shadow)

The shadow starts as a copy of the initial weights and is updated after every training step, inside the
step's graph; it is a `tf.Module` tracked by the trainer, so the checkpoint holds it and a resumed run
continues it exactly.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from onegan_tf.config import ModelConfig
from onegan_tf.networks import network_inputs

# The generation path's networks (Eq. 1-5): what the shadow averages.
AVERAGED = ("V_bg", "V_p", "V_c", "G_bg0", "G_bg1", "G_fg0", "G_fg1", "G_fg2")


def ema_beta(images_seen, batch_size: int, ema_kimg: float, ema_rampup: float):
    """The decay of one update after `images_seen` images (StyleGAN2-ADA's convention, above)."""
    images_seen = tf.cast(images_seen, tf.float64)
    ema_nimg = tf.constant(ema_kimg * 1000.0, tf.float64)
    if ema_rampup:
        ema_nimg = tf.minimum(ema_nimg, images_seen * ema_rampup)
    return tf.cast(0.5 ** (batch_size / tf.maximum(ema_nimg, 1e-8)), tf.float32)


def ema_update(shadow, weights, beta) -> None:
    """shadow <- w + (shadow - w) * beta, for each pair of variables."""
    for s, w in zip(shadow, weights):
        s.assign(w + (s - w) * tf.cast(beta, s.dtype))


def _shadow_network(net: keras.Model, key: str, cfg: ModelConfig) -> keras.Model:
    """A network of `net`'s architecture holding a copy of its weights."""
    shadow = type(net).from_config({**net.get_config(), "name": f"{key}_ema"})
    shadow(network_inputs(key, cfg))
    for a, b in zip(net.weights, shadow.weights):
        b.assign(a)
    return shadow


class GeneratorEMA(tf.Module):
    """Shadow copies of V_* and G_* (attributes of the same names), averaged by `update`."""

    def __init__(self, model, batch_size: int, ema_kimg: float, ema_rampup: float):
        super().__init__(name="ema")
        self.batch_size, self.ema_kimg, self.ema_rampup = int(batch_size), float(ema_kimg), float(ema_rampup)
        for key in AVERAGED:
            setattr(self, key, _shadow_network(getattr(model, key), key, model.cfg))
        # Variable pairs, outside the checkpointed object graph (they only point at the networks' variables).
        self._pairs = ([v for k in AVERAGED for v in getattr(self, k).weights],
                       [v for k in AVERAGED for v in getattr(model, k).weights])

    @property
    def networks(self) -> dict:
        return {key: getattr(self, key) for key in AVERAGED}

    def update(self, step) -> None:
        """Average in the weights just updated by training step `step` (0-based); StyleGAN2-ADA counts the
        images seen before that step, so the first update copies the weights (beta = 0 with a ramp-up)."""
        images_seen = tf.cast(step, tf.int64) * self.batch_size
        ema_update(*self._pairs, ema_beta(images_seen, self.batch_size, self.ema_kimg, self.ema_rampup))
