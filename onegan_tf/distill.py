"""Segmenter distillation: train the U-Net of `onegan_tf.segmenter` on pairs (I, I_m) drawn from the generator.

After the three phases of the schedule (Sec. 4.3) the generator is frozen and every distillation step
1. samples child classes uniformly and z ~ N(0, I) from the stateless seed (seed, step), as a training step
   of the generation path does (a stream of its own, so it never repeats a training draw);
2. generates I and I_m (Eq. 1-5) with the run's generator weights (the EMA by default);
3. takes one Adam step of the segmenter on the per-pixel binary cross-entropy between its mask on I and
   the target: I_m itself (`soft`) or I_m > 0.5 (`hard`).
Every pair is fresh, so the segmenter never sees an image twice and cannot overfit a finite set.

Two ways to show the segmenter more of the real domain, which the generator only approximates:
- `distill_real`: that fraction of each batch is real training images (X_c) with the reconstruction path's
  mask Î_m (Fig. 4) as the target instead of generated pairs;
- `distill_real_backgrounds`: that fraction of the generated pairs is composed (Eq. 5) on a real background
  patch (X_bg) instead of the generator's I_bg: I = X_bg * (1 - I_m) + I_fg * I_m, the target still I_m.
  The layered generator makes this possible; the real backgrounds carry the textures that G_bg smooths.

The generated pairs may also be augmented (`distill_augment`) before the segmenter sees them, since real
images vary in ways the generator's samples may not: `flip` mirrors image and mask, `scale` cuts a random
square of 70-100 % of the side and resizes it back (the object appears larger and off-centre), `colour`
jitters the image's brightness, contrast and saturation (the mask is unchanged). Real images of
`distill_real` are left as they are: their targets come from the encoders, which saw them unaugmented.

`Distiller` holds the segmenter, its optimiser and its step counter; the trainer tracks it, so the run's
checkpoint holds the distillation too and a resumed run continues it exactly.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from onegan_tf.config import Config
from onegan_tf.model import OneGAN, compose, sample_children, sample_z
from onegan_tf.segmenter import build_segmenter, flip_averaged

# Salt of the distillation's random stream, so that its draws differ from the training steps' (seed, step).
STREAM = 1 << 40
# Salt of the augmentations' stream, so that turning them on leaves the classes and z of every step as they were.
AUGMENT_STREAM = 1 << 41
# The range of `scale`'s crop side (fraction of the image) and of `colour`'s jitter (brightness shift, and
# the log-factors of contrast and saturation).
CROP_SIDE = (0.7, 1.0)
COLOUR_JITTER = 0.2


def distillation_noise(seed: int, step, batch: int, cfg: Config) -> dict:
    """The child classes and z of one distillation step, from the stateless seed (seed, STREAM + step)."""
    key = tf.stack([tf.cast(seed, tf.int64), STREAM + tf.cast(step, tf.int64)])
    s = tf.random.experimental.stateless_split(key, 2)
    return {"child": sample_children(s[0], batch, cfg.model.n_child),
            "z": sample_z(s[1], batch, cfg.model.d_z)}


def augment_pairs(key, image, mask, augment: tuple[str, ...]):
    """The pairs (image [B, H, W, 3] in [-1, 1], mask [B, H, W, 1]) under the augmentations named in `augment`
    (flip, scale, colour; module docstring), each sample drawn independently from the stateless `key`."""
    b = tf.shape(image)[0]
    keys = tf.random.experimental.stateless_split(key, 4)
    if "flip" in augment:
        flip = tf.random.stateless_uniform([b, 1, 1, 1], keys[0]) < 0.5
        image = tf.where(flip, tf.reverse(image, [2]), image)
        mask = tf.where(flip, tf.reverse(mask, [2]), mask)
    if "scale" in augment:
        side = tf.random.stateless_uniform([b, 1], keys[1], *CROP_SIDE)
        corner = tf.random.stateless_uniform([b, 2], keys[2]) * (1.0 - side)
        boxes = tf.concat([corner, corner + side], 1)
        size = tf.shape(image)[1:3]
        both = tf.image.crop_and_resize(tf.concat([image, tf.cast(mask, image.dtype)], -1), boxes, tf.range(b), size)
        image, mask = both[..., :3], tf.cast(both[..., 3:], mask.dtype)
    if "colour" in augment:
        u = tf.random.stateless_uniform([3, b, 1, 1, 1], keys[3], -COLOUR_JITTER, COLOUR_JITTER)
        grey = tf.reduce_mean(image, -1, keepdims=True)
        image = grey + (image - grey) * tf.exp(u[2])
        mean = tf.reduce_mean(image, [1, 2, 3], keepdims=True)
        image = mean + (image - mean) * tf.exp(u[1]) + u[0]
        image = tf.clip_by_value(image, -1.0, 1.0)
    return image, mask


def real_count(tc) -> int:
    """How many images of a distillation batch are real (`distill_real` of `batch_size`, rounded)."""
    return int(round(tc.distill_real * tc.batch_size))


def background_count(tc) -> int:
    """How many of a batch's generated pairs are composed on real backgrounds (`distill_real_backgrounds`)."""
    return int(round(tc.distill_real_backgrounds * (tc.batch_size - real_count(tc))))


def distillation_target(I_m, target: str):
    """What the segmenter learns from the generator's mask: I_m itself (soft) or I_m > 0.5 (hard)."""
    I_m = tf.stop_gradient(tf.cast(I_m, tf.float32))
    return I_m if target == "soft" else tf.cast(I_m > 0.5, tf.float32)


def segmentation_loss(target, predicted):
    """Mean per-pixel binary cross-entropy between a target mask and a predicted one, both in [0, 1]."""
    return tf.reduce_mean(keras.losses.binary_crossentropy(target, tf.cast(predicted, tf.float32)))


def mask_iou(a, b):
    """Mean over the batch of the IoU of the masks a > 0.5 and b > 0.5 (1 where both are empty)."""
    a, b = a > 0.5, b > 0.5
    inter = tf.reduce_sum(tf.cast(a & b, tf.float32), axis=[1, 2, 3])
    union = tf.reduce_sum(tf.cast(a | b, tf.float32), axis=[1, 2, 3])
    return tf.reduce_mean(tf.where(union > 0, inter / tf.maximum(union, 1.0), 1.0))


class Distiller(tf.Module):
    """The segmenter, its Adam optimiser and the distillation step counter."""

    def __init__(self, cfg: Config):
        super().__init__(name="distiller")
        tc = cfg.train
        self.cfg = cfg
        self.segmenter = build_segmenter(cfg.model, tc.distill_width)
        rate = tc.distill_learning_rate
        if tc.distill_cosine:
            rate = keras.optimizers.schedules.CosineDecay(rate, tc.distill_steps)
        self.optimizer = keras.optimizers.Adam(rate, name="opt_S")
        self.optimizer.build(self.segmenter.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="distill_step")
        self._untracked = {}

    def shipped_segmenter(self) -> keras.Model:
        """The segmenter as the run writes, evaluates and serves it: flip-averaged with
        `distill_flip_average` (a copy of the trained weights then), else the trained network itself."""
        if self.cfg.train.distill_flip_average:
            return flip_averaged(self.segmenter)
        return self.segmenter

    def train_step(self, model: OneGAN, real=None, backgrounds=None) -> dict:
        """One distillation step on fresh pairs of `model`'s generator, with the `real` images (X_c) and the
        real `backgrounds` (X_bg) that `distill_real` and `distill_real_backgrounds` ask for; returns its loss
        and the IoU of the segmenter's masks with their targets' (before the update)."""
        tc = self.cfg.train
        for name, given, count in (("distill_real", real, real_count(tc)),
                                   ("distill_real_backgrounds", backgrounds, background_count(tc))):
            got = 0 if given is None else int(given.shape[0])
            if got != count:
                raise ValueError(f"{name}={getattr(tc, name)} takes {count} real images a step; got {got}")
        if "fn" not in self._untracked:
            self._untracked["fn"] = tf.function(lambda x, b: self._step(model, x, b))
        return self._untracked["fn"](real, backgrounds)

    def _step(self, model: OneGAN, real, backgrounds) -> dict:
        tc = self.cfg.train
        n_gen = tc.batch_size - real_count(tc)
        images, masks = [], []
        if n_gen:
            noise = distillation_noise(tc.seed, self.step, n_gen, self.cfg)
            gen = model.generate(noise["child"], noise["z"])
            image = gen["I"]
            if backgrounds is not None:
                n_bg = backgrounds.shape[0]
                on_real = compose(tf.cast(backgrounds, image.dtype), gen["I_fg"][:n_bg], gen["I_m"][:n_bg])
                image = tf.concat([on_real, image[n_bg:]], 0)
            mask = gen["I_m"]
            if tc.distill_augmentations:
                key = tf.stack([tf.cast(tc.seed, tf.int64), AUGMENT_STREAM + self.step])
                image, mask = augment_pairs(key, tf.cast(image, tf.float32), tf.cast(mask, tf.float32),
                                            tc.distill_augmentations)
            images.append(image)
            masks.append(mask)
        if real is not None:
            images.append(real)
            masks.append(model.reconstruct(real)["I_m_hat"])
        image = tf.stop_gradient(tf.cast(tf.concat(images, 0), tf.float32))
        mask = tf.concat([tf.cast(m, tf.float32) for m in masks], 0)
        target = distillation_target(mask, tc.distill_target)
        with tf.GradientTape() as tape:
            predicted = self.segmenter(image, training=True)
            loss = segmentation_loss(target, predicted)
        variables = self.segmenter.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.step.assign_add(1)
        out = {"distill/L_BCE": loss}
        if n_gen:
            out["distill/IoU_generator"] = mask_iou(predicted[:n_gen], mask[:n_gen])
        if real is not None:
            out["distill/IoU_encoder"] = mask_iou(predicted[n_gen:], mask[n_gen:])
        return out
