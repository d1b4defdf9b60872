"""STYLE: every sub-network saves to `.keras` and loads back, in a fresh Python process, with identical outputs."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from onegan_tf import networks
from onegan_tf.config import ModelConfig

CONFIGS = {
    "paper": ModelConfig(image_size=32, channel_mult=0.125, n_child=6, n_parent=3),
    # The variants whose structure differs: another size, the Tab. 3a norms, the mask head that sees v_p and
    # reads the parent block (before v_c), the parent code's gain in G_fg0, G_fg2's pose head and warp (at its
    # identity start: a turned warp reads between pixels, where JAX's outputs differed from TensorFlow's by
    # 1.5e-5, over test_backends' 1e-5; tests/test_pose.py round-trips a turned one under TensorFlow).
    "variant": ModelConfig(image_size=64, channel_mult=0.125, n_child=4, n_parent=2, norm="inorm",
                           mask_sees_parent=True, mask_before_child=True, shape_code_gain=3.0,
                           pose_warp=True),
}
VARIANT_NETWORKS = ("G_bg0", "G_fg0", "G_fg1", "G_fg2", "E_p", "E_bg", "D_bg")

# Runs in a fresh interpreter: importing the package registers the classes; nothing else is known about the
# files. Default (safe) mode of load_model.
LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    import onegan_tf.layers, onegan_tf.networks

    directory, out_dir = sys.argv[1:]
    inputs = np.load(f"{directory}/inputs.npz")
    outputs, classes = {}, {}
    for key in json.load(open(f"{directory}/keys.json")):
        net = keras.saving.load_model(f"{directory}/{key}.keras")
        classes[key] = [type(net).__name__, net.count_params()]
        parts = sorted((k for k in inputs.files if k.split(":")[0] == key), key=lambda k: int(k.split(":")[1]))
        args = [inputs[k] for k in parts]
        out = net(args[0] if len(args) == 1 else tuple(args))
        for name, value in (out.items() if isinstance(out, dict) else [("out", out)]):
            outputs[f"{key}:{name}"] = np.asarray(value)
    np.savez(f"{out_dir}/outputs.npz", **outputs)
    json.dump(classes, open(f"{out_dir}/classes.json", "w"))
""")


def random_inputs(name, cfg, rng):
    """`network_inputs`' shapes filled with values in the ranges the networks see (images, masks in [0, 1])."""
    example = networks.network_inputs(name, cfg, batch=2)
    parts = example if isinstance(example, tuple) else (example,)
    values = []
    for i, part in enumerate(parts):
        shape = tuple(part.shape)
        if name.startswith("V_"):
            values.append(np.eye(shape[1], dtype="float32")[rng.integers(0, shape[1], shape[0])])
        elif name == "E_bg" and i == 1:
            values.append(rng.uniform(0, 1, shape).astype("float32"))
        else:
            values.append(rng.uniform(-1, 1, shape).astype("float32"))
    return values


def outputs_of(net, values):
    out = net(values[0] if len(values) == 1 else tuple(values))
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else {"out": np.asarray(out)}


def save_every_network(directory):
    """Every sub-network of both test configurations saved to `directory` as `<tag>-<name>.keras`, with
    `inputs.npz` (random inputs) and `keys.json`; returns their outputs {key:output: array} and
    {key: [class name, parameter count]}."""
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    inputs, expected, classes = {}, {}, {}
    for tag, cfg in CONFIGS.items():
        nets = networks.build_networks(cfg)
        for name, net in nets.items():
            if tag == "variant" and name not in VARIANT_NETWORKS:
                continue
            key = f"{tag}-{name}"
            values = random_inputs(name, cfg, rng)
            inputs.update({f"{key}:{i}": v for i, v in enumerate(values)})
            expected.update({f"{key}:{k}": v for k, v in outputs_of(net, values).items()})
            classes[key] = [type(net).__name__, net.count_params()]
            net.save(directory / f"{key}.keras")
    np.savez(directory / "inputs.npz", **inputs)
    (directory / "keys.json").write_text(json.dumps(sorted(classes)))
    return expected, classes


def test_every_network_loads_from_keras_file_in_a_fresh_process_with_identical_outputs(keras_files, tmp_path):
    directory, expected, classes = keras_files
    assert len(classes) == len(networks.NETWORK_NAMES) + len(VARIANT_NETWORKS)

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", LOADER, str(directory), str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((tmp_path / "classes.json").read_text()) == classes
    loaded = np.load(tmp_path / "outputs.npz")
    assert sorted(loaded.files) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(loaded[key], value, atol=1e-6, rtol=0, err_msg=key)


@pytest.fixture(scope="module")
def paper_nets():
    return networks.build_networks(CONFIGS["paper"])


@pytest.mark.parametrize("name", networks.NETWORK_NAMES)
def test_every_network_rebuilds_from_its_config(paper_nets, name):
    net = paper_nets[name]
    clone = type(net).from_config(net.get_config())
    clone(networks.network_inputs(name, CONFIGS["paper"]))
    assert clone.get_config() == net.get_config()
    assert clone.count_params() == net.count_params()
    assert keras.saving.get_registered_name(type(net)) == f"onegan_tf>{type(net).__name__}"


def test_checkpoint_graph_reaches_every_model_variable():
    """A model-only `tf.train.Checkpoint` must see every weight: layers live in named attributes, never in
    plain lists that the checkpoint graph does not follow (onegan_tf.checkpoint relies on it)."""
    import tensorflow as tf

    from onegan_tf.config import ModelConfig
    from onegan_tf.model import OneGAN

    model = OneGAN(ModelConfig(image_size=32, channel_mult=0.125, n_child=12, n_parent=4))
    root = tf.train.Checkpoint(model=model)  # kept alive: TrackableView holds only a weak reference
    reached = {id(obj) for obj in tf.train.TrackableView(root).descendants()}
    missing = [v.path for net in model.networks.values() for v in net.weights if id(v) not in reached]
    assert not missing, f"variables off the checkpoint graph: {missing}"
