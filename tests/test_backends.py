"""The `.keras` sub-networks under every Keras 3 backend: saved by TensorFlow, loaded and run by JAX/PyTorch.

Under TensorFlow the normalisations are one fused op with a hand-written gradient; under the other backends
they are plain `keras.ops` (layers.py). The files carry no trace of which backend wrote them.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from onegan_tf import layers

# Runs in a fresh interpreter with KERAS_BACKEND set: the one import a OneGAN `.keras` file needs, then
# Keras' safe-mode loader.
LOADER = textwrap.dedent("""
    import json, sys
    import keras
    import numpy as np
    import onegan_tf.networks

    directory, backend, out_path = sys.argv[1:]
    assert keras.backend.backend() == backend, keras.backend.backend()
    inputs, outputs = np.load(f"{directory}/inputs.npz"), {}
    for key in json.load(open(f"{directory}/keys.json")):
        net = keras.saving.load_model(f"{directory}/{key}.keras")
        args = [inputs[k] for k in sorted(inputs.files, key=lambda k: int(k.split(":")[1]))
                if k.split(":")[0] == key]
        out = net(args[0] if len(args) == 1 else tuple(args))
        for name, value in (out.items() if isinstance(out, dict) else [("out", out)]):
            outputs[f"{key}:{name}"] = keras.ops.convert_to_numpy(value)
    np.savez(out_path, **outputs)
""")


def _installed(module):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} is not installed")


@pytest.mark.slow
@pytest.mark.parametrize("backend", [
    # JAX is a test dependency (requirements-test.txt); PyTorch is tested where it is installed.
    pytest.param("jax", marks=_installed("jax")),
    pytest.param("torch", marks=_installed("torch")),
])
def test_every_keras_file_written_by_tensorflow_runs_under_another_backend_with_the_same_outputs(
        keras_files, backend, tmp_path):
    """Every sub-network of both test configurations, saved by TensorFlow (conftest's `keras_files`)."""
    directory, expected, _ = keras_files
    out = tmp_path / "outputs.npz"
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
           "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-W", "ignore", "-c", LOADER, str(directory), backend, str(out)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    got = np.load(out)
    assert sorted(got.files) == sorted(expected)
    for key, value in expected.items():
        # float32 tolerance: the backends reduce in different orders
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-5, err_msg=f"{backend} {key}")


@pytest.mark.parametrize("axes", [[1, 2, 3], [1, 2]])
def test_the_keras_ops_normalisation_equals_the_fused_tensorflow_one(axes):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, (2, 4, 4, 6)), tf.float32)
    x_r = tf.constant(rng.normal(0.0, 1.0, (2, 4, 4, 6)), tf.float32)
    gamma, beta = tf.constant(rng.normal(1, 0.5, 6), tf.float32), tf.constant(rng.normal(0, 0.5, 6), tf.float32)
    np.testing.assert_allclose(layers._forward_ops(x, gamma, beta, axes, 1e-5),
                               layers.normalize(x, gamma, beta, axes, 1e-5), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        layers._forward_ops(x, gamma, beta, axes, 1e-5) * tf.sigmoid(x_r),
        layers.gated_normalize(x, x_r, gamma, beta, axes, 1e-5), rtol=1e-5, atol=1e-5)
