"""The general modules of OneGAN (supplementary Tab. 2), as serializable Keras layers.

- `Normalize`   LayerNorm (per sample over H, W, C) or InstanceNorm (per sample and channel over H, W), with a
                per-channel affine (SPEC §2). On a vector, LayerNorm is over the features.
- `GLUNorm`     GLU-LNorm (paper Sec. 3): `LN(x_L) * sigmoid(x_R)`; `x_R` is never normalised. The paper's
                Tab. 3a variants (GLU-INorm, LNorm, INorm) are the `norm` argument.
- `UpBlock`     UPBlk: nearest x2 upsample -> Conv3x3 (ci -> 2co) -> GLU-LNorm.
- `SameBlock`   SAMEBlk: UPBlk without the upsample (SPEC §2 reading of Tab. 6-7).
- `DownBlock`   DOWNBlk: Conv4x4 stride 2 pad 1 -> LayerNorm -> LeakyReLU(0.2).
- `ResBlock0`   RESBlk0: x + [Conv3x3, GLU-LNorm, Conv3x3, GLU-LNorm](x).
- `ResBlock`    RESBlk: concat(x, code broadcast) -> Conv3x3 -> GLU-LNorm -> RESBlk0 x2 -> Conv3x3 -> GLU-LNorm.

Bias rule (SPEC §2): a conv or Linear directly followed by a normalisation has no bias.
Statistics are computed in float32 even under mixed precision; the normalised tensor is cast back once.
"""

from __future__ import annotations

import keras
from keras import ops

from onegan_tf.config import NORMS

PACKAGE = "onegan_tf"
EPSILON = 1e-5


def register(cls):
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


def conv(filters: int, kernel: int, stride: int = 1, *, bias: bool, padding: str = "same", name=None, dtype=None):
    """A Conv2D with the paper's padding convention: 'same' is P1 for K3 S1 and for K4 S2 on even sizes.

    `dtype="float32"` keeps an output head in float32 under a mixed-precision policy.
    """
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=bias, name=name,
                               dtype=dtype)


@register
class Normalize(keras.layers.Layer):
    """LayerNorm or InstanceNorm with a per-channel affine (SPEC §2).

    mode="layer": per sample over every axis but the batch (H, W, C on images, features on vectors) —
    GroupNorm with one group. mode="instance": per sample and channel over H, W — GroupNorm with one group
    per channel (Keras' `GroupNormalization(groups=-1)` semantics), used by the Tab. 3a ablations.
    """

    def __init__(self, mode: str = "layer", epsilon: float = EPSILON, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("layer", "instance"):
            raise ValueError(f"Normalize mode={mode!r}; allowed values: 'layer', 'instance'")
        self.mode = mode
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.mode == "instance" and len(input_shape) != 4:
            raise ValueError(f"instance normalisation needs an image tensor (B, H, W, C), got shape {input_shape}")
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, x):
        axes = list(range(1, len(x.shape))) if self.mode == "layer" else [1, 2]
        x32 = ops.cast(x, "float32")
        mean, var = ops.moments(x32, axes=axes, keepdims=True)
        scale = ops.rsqrt(var + self.epsilon) * ops.cast(self.gamma, "float32")
        y = (x32 - mean) * scale + ops.cast(self.beta, "float32")
        return ops.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "epsilon": self.epsilon}


@register
class GLUNorm(keras.layers.Layer):
    """GLU-LNorm (paper Sec. 3, Tab. 2) and its Tab. 3a variants; maps 2c channels to c.

    glu_lnorm: LN(x_L) * sigmoid(x_R)      (paper)      glu_inorm: IN(x_L) * sigmoid(x_R)
    lnorm:     GLU(LN(x)), both halves normalised        inorm:     GLU(IN(x))
    """

    def __init__(self, norm: str = "glu_lnorm", **kwargs):
        super().__init__(**kwargs)
        if norm not in NORMS:
            raise ValueError(f"norm={norm!r}; allowed values: {NORMS}")
        self.norm = norm
        self.normalize = Normalize("instance" if "inorm" in norm else "layer", name="norm")

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % 2:
            raise ValueError(f"GLUNorm needs an even channel count to split into x_L, x_R; got {channels}")
        half = list(input_shape)
        half[-1] = channels // 2
        self.normalize.build(tuple(half) if self.norm.startswith("glu_") else tuple(input_shape))

    def call(self, x):
        if self.norm.startswith("glu_"):
            x_l, x_r = ops.split(x, 2, axis=-1)
            return self.normalize(x_l) * ops.sigmoid(x_r)
        x_l, x_r = ops.split(self.normalize(x), 2, axis=-1)
        return x_l * ops.sigmoid(x_r)

    def get_config(self):
        return {**super().get_config(), "norm": self.norm}


@register
class UpBlock(keras.layers.Layer):
    """UPBlk(ci, co) (Tab. 2): nearest-neighbour x2 -> K3P1Conv2d(ci, 2co) -> GLU-LNorm."""

    upsample = True

    def __init__(self, filters: int, norm: str = "glu_lnorm", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.norm = norm
        self.conv = conv(2 * filters, 3, bias=False, name="conv")
        self.glu = GLUNorm(norm, name="glu")

    def build(self, input_shape):
        b, h, w, c = input_shape
        if self.upsample:
            h, w = (None if h is None else 2 * h), (None if w is None else 2 * w)
        self.conv.build((b, h, w, c))
        self.glu.build((b, h, w, 2 * self.filters))

    def call(self, x):
        if self.upsample:
            x = ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)
        return self.glu(self.conv(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "norm": self.norm}


@register
class SameBlock(UpBlock):
    """SAMEBlk(ci, co): UPBlk without the upsample (the bypass branch of E_p and E_bg, Tab. 6-7)."""

    upsample = False


@register
class DownBlock(keras.layers.Layer):
    """DOWNBlk(ci, co) (Tab. 2): K4S2P1Conv2d(ci, co) -> LayerNorm -> lReLU(0.2)."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = conv(filters, 4, 2, bias=False, name="conv")
        self.normalize = Normalize("layer", name="norm")

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.normalize.build(self.conv.compute_output_shape(input_shape))

    def call(self, x):
        return ops.leaky_relu(self.normalize(self.conv(x)), 0.2)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@register
class ResBlock0(keras.layers.Layer):
    """RESBlk0(c) (Tab. 2): x + GLU-LNorm(Conv3x3(GLU-LNorm(Conv3x3(x))))."""

    def __init__(self, norm: str = "glu_lnorm", **kwargs):
        super().__init__(**kwargs)
        self.norm = norm
        self.glu1 = GLUNorm(norm, name="glu1")
        self.glu2 = GLUNorm(norm, name="glu2")

    def build(self, input_shape):
        c = input_shape[-1]
        self.conv1 = conv(2 * c, 3, bias=False, name="conv1")
        self.conv2 = conv(2 * c, 3, bias=False, name="conv2")
        wide = (*input_shape[:-1], 2 * c)
        self.conv1.build(input_shape)
        self.glu1.build(wide)
        self.conv2.build(input_shape)
        self.glu2.build(wide)

    def call(self, x):
        return x + self.glu2(self.conv2(self.glu1(self.conv1(x))))

    def get_config(self):
        return {**super().get_config(), "norm": self.norm}


@register
class ResBlock(keras.layers.Layer):
    """RESBlk(ci, d, co) (Tab. 2): conditions a feature map on a code vector.

    Called on `(x, code)`: concat(x, code broadcast over H x W) -> K3P1Conv2d(ci + d, 2ci) -> GLU-LNorm ->
    RESBlk0(ci) -> RESBlk0(ci) -> K3P1Conv2d(ci, 2co) -> GLU-LNorm.
    """

    def __init__(self, filters: int, norm: str = "glu_lnorm", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.norm = norm
        self.glu_in = GLUNorm(norm, name="glu_in")
        self.res1 = ResBlock0(norm, name="res1")
        self.res2 = ResBlock0(norm, name="res2")
        self.glu_out = GLUNorm(norm, name="glu_out")

    def build(self, input_shape):
        x_shape, code_shape = input_shape
        ci = x_shape[-1]
        self.conv_in = conv(2 * ci, 3, bias=False, name="conv_in")
        self.conv_out = conv(2 * self.filters, 3, bias=False, name="conv_out")
        self.conv_in.build((*x_shape[:-1], ci + code_shape[-1]))
        self.glu_in.build((*x_shape[:-1], 2 * ci))
        self.res1.build(x_shape)
        self.res2.build(x_shape)
        self.conv_out.build(x_shape)
        self.glu_out.build((*x_shape[:-1], 2 * self.filters))

    def call(self, inputs):
        x, code = inputs
        x = ops.concatenate([x, broadcast_code(code, x)], axis=-1)
        x = self.glu_in(self.conv_in(x))
        x = self.res2(self.res1(x))
        return self.glu_out(self.conv_out(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "norm": self.norm}


def broadcast_code(code, like):
    """A code vector (B, d) tiled over the spatial grid of `like` (B, H, W, C) -> (B, H, W, d)."""
    code = ops.cast(code, like.dtype)
    h, w = ops.shape(like)[1], ops.shape(like)[2]
    return ops.tile(code[:, None, None, :], (1, h, w, 1))
