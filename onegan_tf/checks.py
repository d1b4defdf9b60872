"""The checks of a OneGAN's inputs: images, class ids and codes, written once for every route that takes them.

The model (`OneGAN.generate`, `encode`, `reconstruct`), the inference tasks (`onegan_tf.tasks`) and the
serving graph (`onegan_tf.serving`) all check their inputs here, so a bad input gets the same message
whichever route it came by. Every message names the input (``input `child` ...``), states the rule and
ends with what was given.

A rule is checked where it can be: a dtype, and a shape that is known while tracing, in Python (TypeError,
ValueError; inside a `tf.function` that is at trace time); anything that needs the values, or a shape that
only the data tells (the SavedModel's image inputs have none declared), by `require`: a ValueError when
running eagerly, an assertion op with the same message in a graph, wired before the checked tensor is used.
"""

from __future__ import annotations

import tensorflow as tf

# Images are in [-1, 1]; a little slack for values resampled in float arithmetic.
IMAGE_RANGE_SLACK = 1e-3
# Values an error message shows at most (as `tf.debugging.Assert`'s summarize).
SHOWN = 8


def _show(value) -> str:
    """A value as the graph's assertions print it ("[1 16 16 3]"), so that both routes read the same."""
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(str(v) for v in value) + "]"
    return tf.strings.format("{}", value, summarize=SHOWN).numpy().decode()


def require(ok, message: str, got=None):
    """The one way an input rule fails. Eagerly: a ValueError `message` followed by `got`, unless `ok`;
    in a graph: an assertion op that fails with the same text. Returns the op (None when eager)."""
    if tf.executing_eagerly():
        if not bool(ok):
            raise ValueError(message if got is None else f"{message} {_show(got)}")
        return None
    return tf.debugging.Assert(ok, [message] if got is None else [message, got], summarize=SHOWN)


def after(x, *checks):
    """x, computed only once `checks` (ops from `require`, or None) have passed."""
    checks = [c for c in checks if c is not None]
    if not checks:
        return x
    with tf.control_dependencies(checks):
        return tf.identity(x)


def _static(value):
    """A Python int for an int or a tensor whose value tracing knows; None otherwise."""
    value = value if value is None or isinstance(value, int) else tf.get_static_value(value)
    return None if value is None else int(value)


def check_shape(x, want: tuple, rule: str):
    """x of shape `want` (entries: an int, None for any, or a scalar tensor such as a batch size)."""
    static, known = x.shape, tuple(_static(w) for w in want)
    if static.rank is not None:
        dims = static.as_list()
        if len(dims) != len(want) or any(d is not None and k is not None and d != k for d, k in zip(dims, known)):
            raise ValueError(f"{rule}; got shape {_show(dims)}")
        if all(w is None or (d is not None and k is not None) for d, w, k in zip(dims, want, known)):
            return x
    shape = tf.shape(x)
    # Pad the shape to the wanted rank, so that a wrong rank fails this assertion rather than the comparison.
    padded = tf.concat([shape, tf.zeros((len(want),), tf.int32)], 0)[:len(want)]
    good = tf.equal(tf.size(shape), len(want))
    for i, w in enumerate(want):
        if w is not None:
            good = tf.logical_and(good, tf.equal(padded[i], tf.cast(w, tf.int32)))
    x = after(x, require(good, f"{rule}; got shape", shape))
    return tf.ensure_shape(x, known)


def image_rule(name: str, size: int) -> str:
    return f"input `{name}` must be float [batch, {size}, {size}, 3] with values in [-1, 1]"


def check_images(images, size: int, name: str = "images"):
    """A float tensor [batch, size, size, 3] (the values: `check_image_values`). Returns it as a tensor."""
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        raise TypeError(f"{image_rule(name, size)}; got dtype {images.dtype.name}")
    return check_shape(images, (None, size, size, 3), image_rule(name, size))


def check_image_values(images, size: int, name: str = "images"):
    """Images in [-1, 1], without NaN. A separate rule from the shape's because it reads every value: the
    user-facing routes check it, the training step (whose data pipeline makes the range) does not."""
    in_range = tf.reduce_all(tf.abs(images) <= 1.0 + IMAGE_RANGE_SLACK)
    return after(images, require(in_range, f"{image_rule(name, size)}; got values outside [-1, 1] or NaN"))


def class_rule(name: str) -> str:
    return f"input `{name}` must be integer class ids [batch], one per image"


def check_classes(classes, n: int, name: str, batch=None):
    """Integer class ids [batch] in [0, n) (`batch`: the number of images they go with, when there are any).

    The range is checked in a graph too, so that a traced step cannot look up a row past an embedding table.
    """
    classes = tf.convert_to_tensor(classes)
    if not classes.dtype.is_integer:
        raise TypeError(f"{class_rule(name)}; got dtype {classes.dtype.name}")
    classes = check_shape(classes, (batch,), class_rule(name))
    in_range = tf.reduce_all(tf.logical_and(classes >= 0, classes < tf.cast(n, classes.dtype)))
    return after(classes, require(in_range, f"input `{name}`: class ids must be in [0, {n}); got", classes))


def check_codes(codes, dim: int, name: str, batch=None):
    """A float code [batch, dim], one row per class id (`batch`: their number), e.g. the pose codes z."""
    codes = tf.convert_to_tensor(codes)
    rule = f"input `{name}` must be float [batch, {dim}], one row per class id"
    if not codes.dtype.is_floating:
        raise TypeError(f"{rule}; got dtype {codes.dtype.name}")
    return check_shape(codes, (batch, dim), rule)
