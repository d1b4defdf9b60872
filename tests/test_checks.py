"""One set of input checks (onegan_tf.checks): the model, the inference tasks and the serving graph refuse the
same bad inputs with the same message, a ValueError in Python and an assertion inside the traced graph."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from onegan_tf import checks, tasks
from onegan_tf.config import ModelConfig
from onegan_tf.model import OneGAN
from onegan_tf.serving import OneGANServing

N_C, S = 6, 32
NO_BETAS, NO_SEED = tf.zeros((0,), tf.float32), tf.zeros((0,), tf.int64)


@pytest.fixture(scope="module")
def gan():
    keras.utils.set_random_seed(0)
    return OneGAN(ModelConfig(image_size=S, channel_mult=0.125, n_child=N_C, n_parent=2))


@pytest.fixture(scope="module")
def serving(gan):
    return OneGANServing(gan)


def _message(call) -> str:
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)) as info:
        call()
    return str(info.value)


def _images(shape=(2, S, S, 3), value=0.0):
    return tf.fill(shape, value)


def _routes(gan, serving, case):
    """The three routes' calls for one bad input: model, tasks, serving graph."""
    z = tf.zeros((2, gan.cfg.d_z))
    if case == "image_shape":
        bad = _images((2, 16, 16, 3))
        return (lambda: gan.encode(bad), lambda: tasks.cluster(gan, bad), lambda: serving.cluster(bad))
    if case == "target_range":
        target = tf.constant([0, N_C])
        return (lambda: gan.reconstruct(_images(), target_child=target),
                lambda: tasks.translate(gan, _images(), target),
                lambda: serving.translate(_images(), target, NO_BETAS, NO_SEED))
    if case == "target_count":
        target = tf.constant([1])
        return (lambda: gan.reconstruct(_images(), target_child=target),
                lambda: tasks.translate(gan, _images(), target),
                lambda: serving.translate(_images(), target, NO_BETAS, NO_SEED))
    if case == "child_range":
        child = tf.constant([-1, 0])
        return (lambda: gan.generate(child, z), lambda: tasks.generate(gan, child, z),
                lambda: serving.generate(child, NO_SEED))
    raise KeyError(case)


# (case, the rule each route's message states, the offending value as both routes print it)
CASES = [
    ("image_shape", "must be float [batch, 32, 32, 3] with values in [-1, 1]; got shape", "[2 16 16 3]"),
    ("target_range", "input `target_child`: class ids must be in [0, 6); got", "[0 6]"),
    ("target_count", "input `target_child` must be integer class ids [batch], one per image; got shape", "[1]"),
    ("child_range", "input `child`: class ids must be in [0, 6); got", "[-1 0]"),
]


@pytest.mark.parametrize("case,rule,got", CASES, ids=[c[0] for c in CASES])
def test_model_tasks_and_serving_refuse_the_same_input_with_the_same_message(gan, serving, case, rule, got):
    model_call, task_call, serving_call = _routes(gan, serving, case)
    with pytest.raises(ValueError) as model_error:
        model_call()
    with pytest.raises(ValueError) as task_error:
        task_call()
    with pytest.raises(tf.errors.InvalidArgumentError) as graph_error:
        serving_call()
    for error in (model_error, task_error, graph_error):
        message = str(error.value)
        assert rule in message and got in message, message


def test_the_image_names_the_input_of_each_route(gan, serving):
    """The Python API's argument is `images`, the SavedModel's input `image`; the rule is the same."""
    bad = _images((2, 16, 16, 3))
    assert checks.image_rule("images", S) in _message(lambda: tasks.cluster(gan, bad))
    assert checks.image_rule("image", S) in _message(lambda: serving.cluster(bad))


def test_tasks_and_serving_refuse_images_outside_the_range(gan, serving):
    bad = _images(value=3.0)
    rule = "must be float [batch, 32, 32, 3] with values in [-1, 1]; got values outside [-1, 1] or NaN"
    assert rule in _message(lambda: tasks.reconstruct(gan, bad))
    assert rule in _message(lambda: serving.reconstruct(bad, NO_BETAS, NO_SEED))
    assert rule in _message(lambda: tasks.cluster(gan, _images(value=np.nan)))


def test_wrong_dtypes_are_type_errors_naming_the_input(gan):
    with pytest.raises(TypeError, match=r"input `images` must be float .*; got dtype uint8"):
        tasks.cluster(gan, np.zeros((2, S, S, 3), np.uint8))
    with pytest.raises(TypeError, match=r"input `target_child` must be integer class ids .*; got dtype float32"):
        tasks.translate(gan, _images(), tf.constant([0.0, 1.0]))


def test_a_shape_known_while_tracing_fails_at_trace_time_with_the_eager_message(gan):
    traced = tf.function(lambda I: gan.encode(I))
    with pytest.raises(ValueError, match=r"input `images` must be float \[batch, 32, 32, 3\].*got shape \[2 16 16 3\]"):
        traced(_images((2, 16, 16, 3)))


def test_good_inputs_pass_every_route_unchanged(gan, serving):
    images = np.random.default_rng(0).uniform(-1, 1, (2, S, S, 3)).astype(np.float32)
    target = tf.constant([1, 5])
    direct = gan.reconstruct(tf.constant(images), target_child=target)["I_hat"]
    np.testing.assert_array_equal(tasks.translate(gan, images, target)["I_hat"], direct)
    np.testing.assert_allclose(serving.translate(images, target, NO_BETAS, NO_SEED)["I_hat"], direct, atol=1e-5)
    assert checks.check_classes([0, 5], N_C, "child").dtype == tf.int32
