"""The general modules of OneGAN (supplementary Tab. 2), as serializable Keras layers.

- `Normalize`   LayerNorm (per sample over H, W, C) or InstanceNorm (per sample and channel over H, W), with a
                per-channel affine (docs/design.md §2). On a vector, LayerNorm is over the features.
- `GLUNorm`     GLU-LNorm (paper Sec. 3): `LN(x_L) * sigmoid(x_R)`; `x_R` is never normalised. The paper's
                Tab. 3a variants (GLU-INorm, LNorm, INorm) are the `norm` argument.
- `UpBlock`     UPBlk: nearest x2 upsample -> Conv3x3 (ci -> 2co) -> GLU-LNorm.
- `SameBlock`   SAMEBlk: UPBlk without the upsample (docs/design.md §2 reading of Tab. 6-7).
- `DownBlock`   DOWNBlk: Conv4x4 stride 2 pad 1 -> LayerNorm -> LeakyReLU(0.2).
- `ResBlock0`   RESBlk0: x + [Conv3x3, GLU-LNorm, Conv3x3, GLU-LNorm](x).
- `ResBlock`    RESBlk: concat(x, code broadcast) -> Conv3x3 -> GLU-LNorm -> RESBlk0 x2 -> Conv3x3 -> GLU-LNorm.

Bias rule (docs/design.md §2): a conv or Linear directly followed by a normalisation has no bias.
Statistics, and GLU-LNorm's gate, are computed in float32 even under mixed precision; the result is cast back once.

The normalisations run as one fused function with a hand-written gradient (`normalize`, `gated_normalize`):
the affine is folded into one per-sample scale and offset, and the backward pass is two reductions and a
few elementwise ops instead of the ~20 that autodiff makes of moments -> normalise -> affine -> gate.
That fused function is TensorFlow's; under another Keras 3 backend (JAX, PyTorch) the same arithmetic runs
as plain `keras.ops` and that backend's autodiff, so the `.keras` files load and run wherever Keras 3 does.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
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
    """LayerNorm or InstanceNorm with a per-channel affine (docs/design.md §2).

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

    def axes(self, rank: int) -> list[int]:
        """The axes one statistic is taken over."""
        return list(range(1, rank)) if self.mode == "layer" else [1, 2]

    def affine(self):
        """gamma and beta in float32 (read as the layer's variables are read, autocast included)."""
        return ops.cast(self.gamma, "float32"), ops.cast(self.beta, "float32")

    def call(self, x):
        return normalize(ops.cast(x, self.compute_dtype), *self.affine(), self.axes(len(x.shape)),
                         self.epsilon)

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
            x_l, x_r = ops.split(ops.cast(x, self.compute_dtype), 2, axis=-1)
            n = self.normalize
            return gated_normalize(x_l, x_r, *n.affine(), n.axes(len(x.shape)), n.epsilon)
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


# ---------------------------------------------------------------------------------------------------------
# The fused normalisation. x_hat = (x - mean) * rstd over `axes` (two-pass statistics in float32: one pass
# E[x^2] - E[x]^2 loses the variance to cancellation when |mean| >> std); y = x * scale + offset with
# scale = rstd * gamma and offset = beta - mean * scale. With dy the gradient at y and N the statistic's
# element count, the gradients are (S1 = sum dy, S2 = sum dy * x, both over H, W per sample and channel):
#   d beta  = sum_B S1                         d gamma = sum_B rstd * (S2 - mean * S1)
#   dx      = scale * dy + a * x + b,  with  a = -rstd^3 * m2,  b = rstd * (rstd^2 * m2 * mean - m1),
#   m1 = mean(gamma * dy),  m2 = mean(gamma * dy * (x - mean))  over `axes`  (i.e. from gamma * S1, gamma * S2).


def _forward(x, gamma, beta, axes, epsilon):
    """y (float32) and what the backward pass needs."""
    x32 = tf.cast(x, tf.float32)
    mean = tf.reduce_mean(x32, axes, keepdims=True)
    rstd = tf.math.rsqrt(tf.reduce_mean(tf.math.squared_difference(x32, mean), axes, keepdims=True) + epsilon)
    scale = rstd * gamma
    return x32 * scale + (beta - mean * scale), (x32, mean, rstd, scale)


def _backward(dy32, saved, gamma, axes):
    """d x (float32), d gamma, d beta from the gradient at the affine's output."""
    x32, mean, rstd, scale = saved
    rank = len(x32.shape)
    spatial = list(range(1, rank - 1))  # reduced per sample and channel; then over C too for LayerNorm
    s1 = tf.reduce_sum(dy32, spatial, keepdims=True)
    s2 = tf.reduce_sum(dy32 * x32, spatial, keepdims=True)
    per_sample = [a for a in axes if a == rank - 1]
    sizes = [x32.shape[a] for a in axes]
    if None in sizes:
        n = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x32), axes)), tf.float32)
    else:
        n = float(math.prod(sizes))
    g1 = tf.reduce_sum(gamma * s1, per_sample, keepdims=True) / n
    g2 = tf.reduce_sum(gamma * s2, per_sample, keepdims=True) / n
    k = tf.square(rstd) * (g2 - mean * g1)  # rstd^2 * m2
    a = -rstd * k
    b = rstd * (k * mean - g1)
    batch = list(range(rank - 1))
    d_gamma = tf.reduce_sum(rstd * (s2 - mean * s1), batch)
    d_beta = tf.reduce_sum(s1, batch)
    return dy32 * scale + (x32 * a + b), d_gamma, d_beta


def _forward_ops(x, gamma, beta, axes, epsilon):
    """`_forward`'s y in backend-neutral keras.ops (the path of the JAX and PyTorch backends)."""
    x32 = ops.cast(x, "float32")
    mean = ops.mean(x32, axes, keepdims=True)
    scale = ops.rsqrt(ops.mean(ops.square(x32 - mean), axes, keepdims=True) + epsilon) * gamma
    return x32 * scale + (beta - mean * scale)


def _fused() -> bool:
    return keras.backend.backend() == "tensorflow"


def normalize(x, gamma, beta, axes, epsilon):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over `axes`, in x's dtype (docs/design.md §2)."""
    if not _fused():
        return ops.cast(_forward_ops(x, gamma, beta, axes, epsilon), x.dtype)

    @tf.custom_gradient
    def fused(x, gamma, beta):
        y32, saved = _forward(x, gamma, beta, axes, epsilon)

        def grad(dy):
            dx, d_gamma, d_beta = _backward(tf.cast(dy, tf.float32), saved, gamma, axes)
            return tf.cast(dx, x.dtype), d_gamma, d_beta

        return tf.cast(y32, x.dtype), grad

    return fused(x, gamma, beta)


def gated_normalize(x_l, x_r, gamma, beta, axes, epsilon):
    """GLU-LNorm's LN(x_l) * sigmoid(x_r) in x_l's dtype, x_r never normalised (paper Sec. 3)."""
    if not _fused():
        return ops.cast(_forward_ops(x_l, gamma, beta, axes, epsilon), x_l.dtype) * ops.sigmoid(x_r)

    # The gate and the product are float32 too, cast to x_l's dtype once at the output: under mixed_bfloat16
    # on a CPU, bfloat16 elementwise kernels (sigmoid, its gradient, products) are much slower than float32
    # ones, and the normalised half is already float32 here. In float32 every cast is the identity.
    @tf.custom_gradient
    def fused(x_l, x_r, gamma, beta):
        y32, saved = _forward(x_l, gamma, beta, axes, epsilon)
        gate32 = tf.sigmoid(tf.cast(x_r, tf.float32))

        def grad(d_out):
            d32 = tf.cast(d_out, tf.float32)
            dx, d_gamma, d_beta = _backward(d32 * gate32, saved, gamma, axes)
            d_r = tf.raw_ops.SigmoidGrad(y=gate32, dy=d32 * y32)
            return tf.cast(dx, x_l.dtype), tf.cast(d_r, x_r.dtype), d_gamma, d_beta

        return tf.cast(y32 * gate32, x_l.dtype), grad

    return fused(x_l, x_r, gamma, beta)


def broadcast_code(code, like):
    """A code vector (B, d) tiled over the spatial grid of `like` (B, H, W, C) -> (B, H, W, d)."""
    code = ops.cast(code, like.dtype)
    h, w = ops.shape(like)[1], ops.shape(like)[2]
    return ops.tile(code[:, None, None, :], (1, h, w, 1))
