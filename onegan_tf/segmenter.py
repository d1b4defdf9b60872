"""The distilled segmenter: a compact U-Net from an image to its foreground mask (not in the paper).

OneGAN segments a real image through its reconstruction path: E_p, E_c and E_bg encode it, G_fg redraws the
object and its mask Î_m (Fig. 4). The generator alone already produces unlimited (I, I_m) pairs, so an
ordinary segmentation network can be trained on them instead (`onegan_tf.distill`; Melas-Kyriazi et al.'s
recipe with BigBiGAN); at inference it runs one small network rather than three encoders and two generators.

The network is a plain U-Net of built-in Keras layers (so its `.keras` file loads with Keras alone): at each
of `levels` resolutions two Conv3x3 -> GroupNorm(1 group) -> ReLU, a 2x2 max-pool down, nearest upsampling
and the skip connection back up; a Conv1x1 + sigmoid gives I_m in [0, 1]. The normalisation is per sample
(as everywhere in OneGAN's networks), so a mask never depends on the rest of the batch. Widths start at 32
and double per level (capped at 256), scaled by `channel_mult` like every other network and by the
segmenter's own `width` multiplier (`distill_width`); the coarsest feature map is 1/8 of the image (the size
of OneGAN's pre-images).

`flip_averaged` is the test-time flip average (`distill_flip_average`): the mean of the mask of an image and
the mirror of the mask of its mirror. The U-Net commutes with a left-right flip once its kernels are
mirrored ('same' 3x3 convolutions, normalisation over all pixels of a sample, 2x2 pooling and nearest
upsampling of even sizes), so the average is that of the U-Net and a twin holding its mirrored kernels: two
networks of Keras' own layers, no flip op, and the `.keras` file still loads with Keras alone.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from onegan_tf.config import ModelConfig

BASE_WIDTH = 32
MAX_WIDTH = 256


def segmenter_widths(cfg: ModelConfig, width: float = 1.0) -> tuple[int, ...]:
    """Widths per level, finest first; the last one is the bottleneck at image_size / 8."""
    levels = int(math.log2(cfg.image_size // 8)) + 1
    return tuple(max(8, int(round(cfg.width(min(BASE_WIDTH * 2 ** i, MAX_WIDTH)) * width))) for i in range(levels))


def _double_conv(x, width: int, name: str):
    for i in (1, 2):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.GroupNormalization(groups=1, name=f"{name}_norm{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def build_segmenter(cfg: ModelConfig, width: float = 1.0, name: str = "segmenter") -> keras.Model:
    """The U-Net for images of `cfg.image_size` in [-1, 1] -> I_m of shape (B, H, W, 1) in [0, 1]; `width`
    multiplies every level's width (after `channel_mult`)."""
    widths = segmenter_widths(cfg, width)
    image = keras.Input((cfg.image_size, cfg.image_size, 3), name="image")
    x, skips = image, []
    for i, w in enumerate(widths[:-1]):
        x = _double_conv(x, w, f"down{i}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = _double_conv(x, widths[-1], "bottleneck")
    for i in reversed(range(len(widths) - 1)):
        x = layers.UpSampling2D(2, name=f"up{i}")(x)
        x = layers.Concatenate(name=f"skip{i}")([x, skips[i]])
        x = _double_conv(x, widths[i], f"up{i}")
    logits = layers.Conv2D(1, 1, name="logits")(x)
    mask = layers.Activation("sigmoid", dtype="float32", name="I_m")(logits)
    return keras.Model(image, mask, name=name)


def flip_averaged(segmenter: keras.Model, name: str = "segmenter_flip_averaged") -> keras.Model:
    """A model whose mask is the mean of `segmenter`'s on the image and the mirror of `segmenter`'s on the
    mirrored image (module docstring), holding a copy of `segmenter`'s weights and their mirror."""
    image = keras.Input(segmenter.input_shape[1:], name="image")
    twins = []
    for suffix, mirror in (("", False), ("_mirrored", True)):
        twin = keras.models.clone_model(segmenter)
        twin.name = f"{segmenter.name}{suffix}"
        # Conv2D kernels are [kh, kw, in, out]: a mirrored kernel reverses the kw axis.
        twin.set_weights([w[:, ::-1] if mirror and w.ndim == 4 else w for w in segmenter.get_weights()])
        twins.append(twin(image))
    mask = layers.Average(dtype="float32", name="I_m")(twins)
    return keras.Model(image, mask, name=name)
