"""The blocks of onegan_tf/layers.py (docs/design.md §2): GLU-LNorm, its variants, UPBlk, DOWNBlk, RESBlk0, RESBlk
and the fused normalisation, against numpy by hand and against the plain formula under autodiff."""

import keras
import numpy as np
import pytest

from onegan_tf import layers

EPS = layers.EPSILON


def _layer_norm(x):
    """Per sample over every axis but the batch (GroupNorm with one group), no affine."""
    axes = tuple(range(1, x.ndim))
    return (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + EPS)


def _instance_norm(x):
    """Per sample and channel over H, W, no affine."""
    return (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + EPS)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _images(shape, seed=0):
    """Images whose channels have different offsets and scales, so per-channel and per-sample norms differ."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0, 3, shape[-1])
    scales = rng.uniform(0.5, 4.0, shape[-1])
    return (rng.normal(size=shape) * scales + offsets).astype("float32")


def _glu(norm, channels, *, seed=1, affine=True):
    glu = layers.GLUNorm(norm)
    glu.build((None, 5, 6, channels))
    if affine:
        rng = np.random.default_rng(seed)
        glu.normalize.gamma.assign(rng.uniform(0.5, 2.0, glu.normalize.gamma.shape).astype("float32"))
        glu.normalize.beta.assign(rng.normal(0, 1, glu.normalize.beta.shape).astype("float32"))
    return glu


def _affine(glu):
    return np.asarray(glu.normalize.gamma), np.asarray(glu.normalize.beta)


# ---------------------------------------------------------------------------------------------------------
# GLU-LNorm (paper Sec. 3): out = LN(x_L) * sigmoid(x_R); x_R is not normalised.


def test_glu_lnorm_is_layer_norm_of_x_left_times_sigmoid_of_x_right():
    glu = _glu("glu_lnorm", 8)
    x = _images((3, 5, 6, 8))
    gamma, beta = _affine(glu)
    x_l, x_r = x[..., :4], x[..., 4:]
    expected = (_layer_norm(x_l) * gamma + beta) * _sigmoid(x_r)
    np.testing.assert_allclose(np.asarray(glu(x)), expected, atol=1e-5)


def test_glu_lnorm_does_not_normalise_x_right():
    glu = _glu("glu_lnorm", 8)
    x = _images((2, 5, 6, 8))
    scaled = x.copy()
    scaled[..., 4:] *= 3.0
    gamma, beta = _affine(glu)
    left = _layer_norm(x[..., :4]) * gamma + beta
    out, out_scaled = np.asarray(glu(x)), np.asarray(glu(scaled))
    # Scaling x_R changes the output, and only through the sigmoid: a normalised x_R would be scale-invariant.
    assert np.abs(out - out_scaled).max() > 1e-2
    np.testing.assert_allclose(out_scaled, left * _sigmoid(3.0 * x[..., 4:]), atol=1e-5)


def test_glu_lnorm_normalises_x_left_per_sample_over_h_w_and_c():
    glu = _glu("glu_lnorm", 8, affine=False)  # gamma = 1, beta = 0: the normalised x_L itself
    x = _images((3, 5, 6, 8))
    x[..., 4:] = 30.0  # sigmoid(x_R) = 1: the output is LN(x_L)
    out = np.asarray(glu(x), dtype="float64")
    np.testing.assert_allclose(out.mean((1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.var((1, 2, 3)), 1.0, atol=1e-3)
    # Over H, W and C together, not per channel: the channel means keep their differences.
    assert np.abs(out.mean((1, 2))).max() > 0.1


def test_layer_norm_statistics_of_one_sample_do_not_depend_on_the_others():
    glu = _glu("glu_lnorm", 8)
    x = _images((2, 5, 6, 8))
    other = x.copy()
    other[1] = other[1] * 10.0 + 7.0
    np.testing.assert_allclose(np.asarray(glu(x))[0], np.asarray(glu(other))[0], atol=1e-6)
    single = np.asarray(glu(x[:1]))
    np.testing.assert_allclose(np.asarray(glu(x))[:1], single, atol=1e-6)


def test_glu_inorm_normalises_x_left_per_channel_over_h_w():
    glu = _glu("glu_inorm", 8)
    x = _images((3, 5, 6, 8))
    gamma, beta = _affine(glu)
    expected = (_instance_norm(x[..., :4]) * gamma + beta) * _sigmoid(x[..., 4:])
    np.testing.assert_allclose(np.asarray(glu(x)), expected, atol=1e-5)


@pytest.mark.parametrize("norm,reference", [("lnorm", _layer_norm), ("inorm", _instance_norm)])
def test_lnorm_and_inorm_variants_normalise_both_halves_then_gate(norm, reference):
    glu = _glu(norm, 8)
    x = _images((3, 5, 6, 8))
    gamma, beta = _affine(glu)
    assert gamma.shape == (8,)  # the affine covers all 2c channels
    y = reference(x) * gamma + beta
    np.testing.assert_allclose(np.asarray(glu(x)), y[..., :4] * _sigmoid(y[..., 4:]), atol=1e-5)


@pytest.mark.parametrize("norm,params", [("glu_lnorm", 2 * 4), ("glu_inorm", 2 * 4), ("lnorm", 2 * 8),
                                         ("inorm", 2 * 8)])
def test_parameter_count_of_each_norm_variant(norm, params):
    glu = layers.GLUNorm(norm)
    glu.build((None, 5, 6, 8))
    assert glu.count_params() == params
    block = layers.UpBlock(4, norm)  # UPBlk(6, 4): Conv3x3(6 -> 8) without bias + the norm's affine
    block.build((None, 5, 6, 6))
    assert block.count_params() == 3 * 3 * 6 * 8 + params


def test_layer_norm_on_a_vector_is_over_the_features():
    norm = layers.Normalize("layer")
    x = _images((4, 10))
    norm.build(x.shape)
    norm.gamma.assign(np.linspace(0.5, 2.0, 10).astype("float32"))
    norm.beta.assign(np.linspace(-1.0, 1.0, 10).astype("float32"))
    expected = _layer_norm(x) * np.linspace(0.5, 2.0, 10) + np.linspace(-1.0, 1.0, 10)
    np.testing.assert_allclose(np.asarray(norm(x)), expected, atol=1e-5)


def test_normalization_arguments_are_checked_with_the_allowed_values():
    with pytest.raises(ValueError, match="glu_lnorm"):
        layers.GLUNorm("batchnorm")
    with pytest.raises(ValueError, match="'layer', 'instance'"):
        layers.Normalize("group")
    with pytest.raises(ValueError, match="even channel count"):
        layers.GLUNorm().build((None, 4, 4, 7))
    with pytest.raises(ValueError, match="image tensor"):
        layers.Normalize("instance").build((None, 10))


# ---------------------------------------------------------------------------------------------------------
# Blocks (Tab. 2).


def _copy_weights(src, dst):
    for s, d in zip(src.weights, dst.weights, strict=True):
        d.assign(s)


def test_up_block_is_nearest_upsample_then_same_block():
    keras.utils.set_random_seed(0)
    x = _images((2, 4, 5, 6))
    up, same = layers.UpBlock(4), layers.SameBlock(4)
    y_up = np.asarray(up(x))
    same.build((None, 8, 10, 6))
    _copy_weights(up, same)
    upsampled = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    assert y_up.shape == (2, 8, 10, 4)
    np.testing.assert_allclose(y_up, np.asarray(same(upsampled)), atol=1e-5)
    assert same(x).shape == (2, 4, 5, 4)


def test_up_block_conv_has_no_bias_and_feeds_glu_lnorm():
    keras.utils.set_random_seed(0)
    x = _images((2, 4, 4, 6))
    block = layers.SameBlock(4)
    y = np.asarray(block(x))
    assert not block.conv.use_bias  # bias rule: the conv is followed by a normalisation
    h = np.asarray(block.conv(x))
    gamma, beta = _affine(block.glu)
    np.testing.assert_allclose(y, (_layer_norm(h[..., :4]) * gamma + beta) * _sigmoid(h[..., 4:]), atol=1e-5)


def test_down_block_is_strided_conv_layer_norm_leaky_relu():
    keras.utils.set_random_seed(0)
    x = _images((2, 8, 8, 3))
    block = layers.DownBlock(5)
    y = np.asarray(block(x))
    assert y.shape == (2, 4, 4, 5)
    assert not block.conv.use_bias
    assert block.count_params() == 4 * 4 * 3 * 5 + 2 * 5
    h = _layer_norm(np.asarray(block.conv(x)))
    np.testing.assert_allclose(y, np.where(h > 0, h, 0.2 * h), atol=1e-5)
    assert (y < 0).any()  # the negative slope is 0.2, not 0


def test_res_block0_adds_its_input():
    keras.utils.set_random_seed(0)
    x = _images((2, 4, 4, 6))
    block = layers.ResBlock0()
    y = np.asarray(block(x))
    assert y.shape == x.shape
    assert block.count_params() == 2 * (3 * 3 * 6 * 12 + 2 * 6)
    # A zero second conv makes the residual branch LN(0) * sigmoid(0) = beta * 0.5 = 0: the block is the identity.
    block.conv2.kernel.assign(np.zeros(block.conv2.kernel.shape, "float32"))
    np.testing.assert_allclose(np.asarray(block(x)), x, atol=1e-6)
    assert np.abs(y - x).max() > 1e-3


def test_res_block_conditions_on_a_code_broadcast_over_the_grid():
    keras.utils.set_random_seed(0)
    x = _images((2, 4, 4, 8))
    code = np.random.default_rng(1).normal(size=(2, 3)).astype("float32")
    block = layers.ResBlock(4)
    y = np.asarray(block((x, code)))
    assert y.shape == (2, 4, 4, 4)
    ci, d, co = 8, 3, 4
    conv_in, res0, conv_out = 3 * 3 * (ci + d) * 2 * ci + 2 * ci, 2 * (3 * 3 * ci * 2 * ci + 2 * ci), 9 * ci * 2 * co
    assert block.count_params() == conv_in + 2 * res0 + conv_out + 2 * co
    other = code.copy()
    other[1] += 1.0
    y_other = np.asarray(block((x, other)))
    np.testing.assert_allclose(y_other[0], y[0], atol=1e-6)  # sample 0's code is unchanged
    assert np.abs(y_other[1] - y[1]).max() > 1e-3
    tiled = np.asarray(layers.broadcast_code(code, x))
    assert tiled.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(tiled, np.broadcast_to(code[:, None, None, :], (2, 4, 4, 3)))


@pytest.mark.parametrize("make", [
    lambda: layers.Normalize("instance", epsilon=1e-3), lambda: layers.GLUNorm("glu_inorm"),
    lambda: layers.UpBlock(6, "lnorm"), lambda: layers.SameBlock(6, "inorm"), lambda: layers.DownBlock(6),
    lambda: layers.ResBlock0("glu_inorm"), lambda: layers.ResBlock(6, "glu_lnorm")])
def test_layers_are_registered_and_round_trip_their_config(make):
    layer = make()
    cls = type(layer)
    assert keras.saving.get_registered_name(cls) == f"onegan_tf>{cls.__name__}"
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is cls
    assert clone.get_config() == layer.get_config()


# ---------------------------------------------------------------------------------------------------------
# The fused normalisation (one function with a hand-written gradient) against the plain formula under
# autodiff: values and the gradients of x, gamma and beta, in float32 and under mixed_bfloat16.


def _plain(x, gamma, beta, axes, compute_dtype):
    """The textbook formula, differentiated by TensorFlow: statistics in float32, the result cast back."""
    import tensorflow as tf

    x32 = tf.cast(x, "float32")
    mean, var = tf.nn.moments(x32, axes, keepdims=True)
    y = (x32 - mean) / tf.sqrt(var + EPS) * tf.cast(gamma, "float32") + tf.cast(beta, "float32")
    return tf.cast(y, compute_dtype)


def _plain_glu(glu, x):
    import tensorflow as tf

    n, dtype = glu.normalize, glu.compute_dtype
    gamma, beta = (tf.cast(tf.cast(v, dtype), "float32") for v in (n.gamma.value, n.beta.value))
    x = tf.cast(x, dtype)
    axes = n.axes(len(x.shape))
    if glu.norm.startswith("glu_"):
        x_l, x_r = tf.split(x, 2, axis=-1)
        return _plain(x_l, gamma, beta, axes, dtype) * tf.sigmoid(x_r)
    x_l, x_r = tf.split(_plain(x, gamma, beta, axes, dtype), 2, axis=-1)
    return x_l * tf.sigmoid(x_r)


def _value_and_grads(fn, x, variables, seed=3):
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        w = tf.constant(np.random.default_rng(seed).normal(size=y.shape).astype("float32"))
        loss = tf.reduce_sum(tf.cast(y, "float32") * w)
    grads = tape.gradient(loss, [x] + [v.value for v in variables])
    return [np.asarray(tf.cast(t, "float32")) for t in [y] + grads]


@pytest.mark.parametrize("dtype,rtol", [("float32", 2e-5), ("mixed_bfloat16", 2e-2)])
@pytest.mark.parametrize("norm", ["glu_lnorm", "glu_inorm", "lnorm", "inorm"])
def test_fused_normalisation_matches_the_plain_formula_and_its_gradient(norm, dtype, rtol):
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(dtype)  # as training sets it: the inner Normalize follows too
    try:
        glu = layers.GLUNorm(norm)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    glu.build((None, 5, 6, 8))
    rng = np.random.default_rng(1)
    n = glu.normalize
    n.gamma.assign(rng.uniform(0.5, 2.0, n.gamma.shape).astype("float32"))
    n.beta.assign(rng.normal(0, 1, n.beta.shape).astype("float32"))
    x = _images((3, 5, 6, 8))
    got = _value_and_grads(glu, x, [n.gamma, n.beta])
    want = _value_and_grads(lambda t: _plain_glu(glu, t), x, [n.gamma, n.beta])
    if dtype != "float32":
        assert glu(x).dtype == "bfloat16"
    for name, g, w in zip(("y", "dx", "dgamma", "dbeta"), got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * np.abs(w).max(), err_msg=name)


@pytest.mark.parametrize("shape,mode", [((4, 10), "layer"), ((3, 5, 6, 4), "layer"), ((3, 5, 6, 4), "instance")])
def test_fused_normalize_layer_matches_the_plain_formula_and_its_gradient(shape, mode):
    norm = layers.Normalize(mode)
    norm.build(shape)
    rng = np.random.default_rng(2)
    norm.gamma.assign(rng.uniform(0.5, 2.0, shape[-1]).astype("float32"))
    norm.beta.assign(rng.normal(0, 1, shape[-1]).astype("float32"))
    x = _images(shape)
    got = _value_and_grads(norm, x, [norm.gamma, norm.beta])
    want = _value_and_grads(lambda t: _plain(t, norm.gamma.value, norm.beta.value, norm.axes(len(shape)), "float32"),
                            x, [norm.gamma, norm.beta])
    for name, g, w in zip(("y", "dx", "dgamma", "dbeta"), got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5 * np.abs(w).max(), err_msg=name)
