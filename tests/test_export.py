"""The TF Serving SavedModel and the `.keras` sub-networks of `python -m onegan_tf.export`.

One run directory (a tiny OneGAN written as the trainer writes its checkpoints, `make_run`) is exported once
per session (conftest's `exported`, which the serving bench times too); the tests then load it the way a
server would: in a fresh process that imports TensorFlow alone, through `saved_model_cli`, and by replaying
the warmup requests.
"""

import base64
import io
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from onegan_tf import export, serving
from onegan_tf.config import Config, ModelConfig
from onegan_tf.model import BETA_NAMES, sample_eps, sample_z
from onegan_tf.networks import NETWORK_NAMES, network_inputs

CFG = ModelConfig(image_size=32, channel_mult=0.125, n_child=6, n_parent=3)
STEP = 7
BATCH = 2
BIN = os.path.dirname(sys.executable)


def make_run(run_dir):
    """A run directory as `python -m onegan_tf.train` leaves it (config.json, ckpt/ckpt-STEP); returns the
    trainer's model, whose weights the export must reproduce."""
    from onegan_tf.trainer import OneGANTrainer

    cfg = Config(model=CFG)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(cfg.to_dict(), f)
    trainer = OneGANTrainer(cfg)
    trainer.step.assign(STEP)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(trainer=trainer), os.path.join(run_dir, "ckpt"), 1)
    manager.save(checkpoint_number=STEP)
    return trainer.model


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A run directory and its model, without the (slow) SavedModel export: for the fast tests."""
    root = tmp_path_factory.mktemp("run")
    return {"root": root, "run": str(root / "run"), "model": make_run(str(root / "run"))}


@pytest.fixture(scope="module")
def loaded(exported):
    return exported["loaded"]


def _decoded(image_bytes):
    """What the model must see of encoded images, computed without the export's code: RGB (a grayscale image's
    one channel repeated), the centred square, resized to the model's size (bilinear, antialiased, rounded to
    8 bits) unless it has that size already, scaled to [-1, 1]."""
    out = []
    for b in image_bytes:
        image = tf.io.decode_image(b, expand_animations=False).numpy()
        if image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=-1)
        h, w, _ = image.shape
        side = min(h, w)
        square = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        square = square.astype(np.float32)
        if side != CFG.image_size:
            square = np.round(np.clip(tf.image.resize(square, (CFG.image_size,) * 2, "bilinear", antialias=True),
                                      0, 255))
        out.append(square / 127.5 - 1.0)
    return np.stack(out)


def _client_images():
    """Encoded images a client would send: a wide RGB JPEG (cropped and resized in the SavedModel) and a tall
    grayscale JPEG (one channel), both larger than the model's size, with smooth content and an object off
    the centre so that a wrong crop or channel handling changes the outputs."""
    from PIL import Image

    y, x = np.mgrid[0:45, 0:70]
    wide = np.stack([x * 3, y * 5, (x + y) * 2], -1).astype(np.uint8)
    wide[10:30, 40:60] = (220, 40, 30)
    tall = (np.mgrid[0:72, 0:50][0] * 3).astype(np.uint8)
    tall[20:40, 5:25] = 250
    encoded = []
    for array, mode in ((wide, "RGB"), (tall, "L")):
        buf = io.BytesIO()
        Image.fromarray(array, mode).save(buf, "JPEG", quality=90)
        encoded.append(buf.getvalue())
    return np.array(encoded, object)


def expected_outputs(model, signature, inputs):
    """Each signature's outputs computed directly from the OneGAN methods (not through the serving module)."""
    if signature == "generate":
        out = model.generate(inputs["child"], sample_z(inputs["seed"], len(inputs["child"]), CFG.d_z))
        return {k: out[k] for k in ("I", "I_fg", "I_m", "I_bg")}
    I = inputs["image"] if "image" in inputs else _decoded(inputs["image_bytes"])
    task = signature.removesuffix("_bytes")
    if task == "cluster":
        enc = model.encode(I)
        return {"child": np.argmax(enc["e_c_hat"], -1), "parent": np.argmax(enc["e_p_hat"], -1),
                "child_probs": tf.nn.softmax(enc["e_c_hat"]), "parent_probs": tf.nn.softmax(enc["e_p_hat"])}
    betas, eps = None, None
    if len(inputs.get("betas", [])):
        betas = {n: tf.fill([len(I)], float(inputs["betas"][i])) for i, n in enumerate(BETA_NAMES)}
    if len(inputs.get("seed", [])):
        eps = sample_eps(inputs["seed"], len(I), CFG)
    rec = model.reconstruct(I, betas=betas, eps=eps, target_child=inputs.get("target_child"))
    if task in ("segment", "segment_encoder", "serving_default"):  # no distilled segmenter in this run
        return {"mask": rec["I_m_hat"], "child": rec["pred_child"], "parent": rec["pred_parent"],
                "child_probs": tf.nn.softmax(rec["e_c_hat"]), "parent_probs": tf.nn.softmax(rec["e_p_hat"])}
    if task == "remove_object":
        return {"I_bg_hat": rec["I_bg_hat"]}
    return {k: rec[k] for k in ("I_hat", "I_fg_hat", "I_bg_hat", "I_m_hat")}


def cases():
    """(case name, signature, inputs): every signature with defaults, and the controls set explicitly."""
    out = [(name, name, export.signature_inputs(name, CFG, BATCH)) for name in export.SIGNATURES]
    for name in ("reconstruct", "segment_bytes", "translate"):
        inputs = export.signature_inputs(name, CFG, BATCH)
        inputs.update(betas=np.array([0.3, 0.6, 0.7, 0.9], np.float32), seed=np.array([4, 2], np.int64))
        out.append((f"{name}+controls", name, inputs))
    for name in ("serving_default", "cluster_bytes", "reconstruct_bytes"):
        inputs = export.signature_inputs(name, CFG, BATCH)
        inputs["image_bytes"] = _client_images()
        out.append((f"{name}+jpeg", name, inputs))
    return out


def rest_requests():
    """(case name, signature, inputs, body): TF Serving REST predict bodies of the client JPEGs, in the row
    format (`instances`, one `{"b64": ...}` per image: a single-input signature) and the columnar format
    (`inputs` by name: a signature whose controls are not batched)."""
    images = _client_images()
    b64 = [{"b64": base64.b64encode(b).decode("ascii")} for b in images]
    return [
        ("rest rows", "serving_default", {"image_bytes": images},
         json.dumps({"signature_name": "serving_default", "instances": b64})),
        ("rest columns", "segment_bytes", {"image_bytes": images, "betas": np.zeros((0,), np.float32),
                                           "seed": np.array([4, 2], np.int64)},
         json.dumps({"signature_name": "segment_bytes", "inputs": {"image_bytes": b64, "betas": [],
                                                                   "seed": [4, 2]}})),
    ]


FRESH_PROCESS = textwrap.dedent("""
    import base64, json, pickle, sys
    import numpy as np
    import tensorflow as tf

    def rest_value(value, dtype):
        # TF Serving's JSON rules: {"b64": ...} is the bytes of a string element; lists nest as dimensions;
        # the element type is the signature's.
        def walk(v):
            if isinstance(v, dict):
                assert set(v) == {"b64"} and dtype == tf.string, v
                return base64.b64decode(v["b64"])
            return [walk(x) for x in v] if isinstance(v, list) else v
        return np.array(walk(value), dtype=object if dtype == tf.string else dtype.as_numpy_dtype)

    def rest_predict(loaded, body):
        # The REST predict API: `instances` (rows, batched along dim 0) or `inputs` (columns), never both;
        # a bare value in either stands for a signature's single input. The answer is JSON as the server's.
        request = json.loads(body)
        signature = loaded.signatures[request.get("signature_name", "serving_default")]
        specs = signature.structured_input_signature[1]
        assert ("instances" in request) != ("inputs" in request), sorted(request)
        if "instances" in request:
            rows = request["instances"]
            single = len(specs) == 1 and not (isinstance(rows[0], dict) and set(rows[0]) != {"b64"})
            columns = {next(iter(specs)): rows} if single else {k: [r[k] for r in rows] for k in specs}
        else:
            columns = request["inputs"]
            columns = columns if isinstance(columns, dict) and set(columns) != {"b64"} else {
                next(iter(specs)): columns}
        assert set(columns) == set(specs), (sorted(columns), sorted(specs))
        out = signature(**{k: tf.constant(rest_value(v, specs[k].dtype)) for k, v in columns.items()})
        out = {k: v.numpy().tolist() for k, v in out.items()}
        if "instances" in request:
            return json.dumps({"predictions": [{k: v[i] for k, v in out.items()} for i in range(len(rows))]})
        return json.dumps({"outputs": out})

    saved_model, keras_dir, directory = sys.argv[1:]
    loaded = tf.saved_model.load(saved_model)
    calls, requests = pickle.load(open(f"{directory}/inputs.pkl", "rb"))
    results = {}
    for case, signature, inputs in calls:
        out = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        results[case] = {k: v.numpy() for k, v in out.items()}
    responses = {case: rest_predict(loaded, body) for case, body in requests}
    assert not any(m.startswith("onegan_tf") for m in sys.modules), "the SavedModel needed onegan_tf"
    pickle.dump((results, responses), open(f"{directory}/outputs.pkl", "wb"))

    # Then, in the same process (sharing TensorFlow's start-up), the `.keras` files, which need one import.
    import keras
    import onegan_tf.networks  # registers the classes: the one import a .keras file of OneGAN needs

    inputs, outputs = np.load(f"{directory}/inputs.npz"), {}
    for name in onegan_tf.networks.NETWORK_NAMES:
        net = keras.saving.load_model(f"{keras_dir}/{name}.keras")  # safe mode
        args = [inputs[k] for k in sorted(inputs.files) if k.split(":")[0] == name]
        out = net(args[0] if len(args) == 1 else tuple(args))
        for key, value in (out.items() if isinstance(out, dict) else [("out", out)]):
            outputs[f"{name}/{key}"] = np.asarray(value)
    np.savez(f"{directory}/outputs.npz", **outputs)
""")


@pytest.fixture(scope="module")
def fresh_process(exported, tmp_path_factory):
    """One fresh process serves both fresh-process checks: first TensorFlow alone runs every signature case and
    REST request on the SavedModel, then `onegan_tf.networks` is imported to load each `.keras` file.
    Returns the cases, the requests, and the inputs and outputs of both parts."""
    import pickle

    directory = tmp_path_factory.mktemp("fresh_process")
    all_cases, requests = cases(), rest_requests()
    with open(directory / "inputs.pkl", "wb") as f:
        pickle.dump((all_cases, [(case, body) for case, _, _, body in requests]), f)
    rng = np.random.default_rng(1)
    keras_inputs = {}
    for name in NETWORK_NAMES:
        parts = network_inputs(name, CFG, batch=2)
        parts = parts if isinstance(parts, tuple) else (parts,)
        for i, p in enumerate(parts):
            keras_inputs[f"{name}:{i}"] = rng.uniform(0 if (name == "E_bg" and i) else -1, 1,
                                                      tuple(p.shape)).astype("f4")
    np.savez(directory / "inputs.npz", **keras_inputs)
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, exported["saved_model"], exported["keras_dir"],
                    str(directory)], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    with open(directory / "outputs.pkl", "rb") as f:
        results, responses = pickle.load(f)
    return {"cases": all_cases, "requests": requests, "results": results, "responses": responses,
            "keras_inputs": keras_inputs, "keras_outputs": dict(np.load(directory / "outputs.npz"))}


def _rest_outputs(response: str) -> dict:
    """Output name -> array from a REST response: `predictions` rows restacked, or `outputs` columns."""
    body = json.loads(response)
    if "predictions" in body:
        rows = body["predictions"]
        return {k: np.array([r[k] for r in rows]) for k in rows[0]}
    return {k: np.array(v) for k, v in body["outputs"].items()}


@pytest.mark.slow
def test_every_signature_runs_in_a_fresh_tensorflow_only_process_and_matches_the_model(exported, fresh_process):
    all_cases, requests = fresh_process["cases"], fresh_process["requests"]
    results = dict(fresh_process["results"])
    assert {c[1] for c in all_cases} == set(export.SIGNATURES)
    results.update({case: _rest_outputs(fresh_process["responses"][case]) for case, _, _, _ in requests})
    for case, signature, inputs in all_cases + [r[:3] for r in requests]:
        want = expected_outputs(exported["model"], signature, inputs)
        got = results[case]
        assert sorted(got) == sorted(want), case
        for key in want:
            assert got[key].shape[0] == BATCH, (case, key)
            np.testing.assert_allclose(got[key], np.asarray(want[key]), rtol=1e-4, atol=1e-5, err_msg=f"{case}/{key}")


@pytest.mark.slow
def test_the_exported_model_has_every_weight_of_the_model_that_wrote_the_run(small_run):
    restored, step = export.load_model(small_run["run"])
    assert step == STEP
    for name, net in small_run["model"].networks.items():
        for w, r in zip(net.weights, restored.networks[name].weights, strict=True):
            np.testing.assert_array_equal(w.numpy(), r.numpy(), err_msg=w.path)


@pytest.mark.slow
def test_controls_change_the_outputs_and_empty_controls_are_the_inference_defaults(loaded):
    inputs = {k: tf.constant(v) for k, v in export.signature_inputs("reconstruct", CFG, BATCH).items()}
    default = loaded.signatures["reconstruct"](**inputs)["I_hat"].numpy()
    ones = loaded.signatures["reconstruct"](**{**inputs, "betas": tf.ones((4,))})["I_hat"].numpy()
    mixed = loaded.signatures["reconstruct"](**{**inputs, "betas": tf.constant([0.0, 0.0, 0.5, 0.5])})["I_hat"]
    np.testing.assert_array_equal(default, ones)
    assert np.abs(mixed.numpy() - default).max() > 1e-4
    gen = loaded.signatures["generate"]
    child = tf.constant([0, 1], tf.int32)
    a = gen(child=child, seed=tf.zeros((0,), tf.int64))["I"].numpy()
    b = gen(child=child, seed=tf.constant([0, 0], tf.int64))["I"].numpy()
    c = gen(child=child, seed=tf.constant([1, 0], tf.int64))["I"].numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


@pytest.mark.slow
def test_saved_model_cli_lists_every_signature(exported):
    """The signatures of the `serve` tag-set, as TF Serving reads them (`show --all` would also load and list
    every concrete function, which costs more than the rest of the check)."""
    out = subprocess.run([os.path.join(BIN, "saved_model_cli"), "show", "--dir", exported["saved_model"],
                          "--tag_set", "serve"], check=True, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).stdout
    listed = [k for k in re.findall(r'SignatureDef key: "(\w+)"', out) if k != "__saved_model_init_op"]
    assert sorted(listed) == sorted(export.SIGNATURES)


@pytest.mark.slow
def test_warmup_requests_parse_and_run_on_the_loaded_signatures(exported, loaded):
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(exported["saved_model"], export.WARMUP_FILE)
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == list(export.SIGNATURES)
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "onegan"
        signature = loaded.signatures[request.model_spec.signature_name]
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        assert set(inputs) == set(signature.structured_input_signature[1])
        out = signature(**inputs)
        assert all(np.all(np.isfinite(v.numpy())) for v in out.values() if v.dtype.is_floating)


@pytest.mark.slow
def test_every_sub_network_round_trips_through_its_keras_file_in_a_fresh_process(exported, fresh_process):
    model = exported["model"]
    assert sorted(os.listdir(exported["keras_dir"])) == sorted(f"{n}.keras" for n in NETWORK_NAMES)
    inputs, got = fresh_process["keras_inputs"], fresh_process["keras_outputs"]
    for name, net in model.networks.items():
        args = [inputs[k] for k in sorted(inputs) if k.split(":")[0] == name]
        out = net(args[0] if len(args) == 1 else tuple(args))
        for key, value in (out.items() if isinstance(out, dict) else [("out", out)]):
            np.testing.assert_allclose(got[f"{name}/{key}"], np.asarray(value), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name}/{key}")


@pytest.mark.slow
def test_command_line_writes_the_keras_files_of_a_run(small_run, tmp_path, capsys):
    rc = export.main(["export", f"--run_dir={small_run['run']}", f"--keras_dir={tmp_path / 'nets'}"])
    assert rc == 0
    assert sorted(os.listdir(tmp_path / "nets")) == sorted(f"{n}.keras" for n in NETWORK_NAMES)
    assert "import onegan_tf.networks" in capsys.readouterr().out
    assert export.main(["export", f"--run_dir={small_run['run']}"]) == 2  # nothing to write
    # All or none: an existing file makes the whole export refuse, writing nothing.
    with pytest.raises(export.ExportError, match="refusing to overwrite"):
        export.export_keras(small_run["model"], str(tmp_path / "nets"))
    assert sorted(os.listdir(tmp_path / "nets")) == sorted(f"{n}.keras" for n in NETWORK_NAMES)


def test_export_refuses_to_overwrite_an_existing_version(small_run, tmp_path):
    model_dir = tmp_path / "serving" / "onegan"
    (model_dir / str(STEP)).mkdir(parents=True)
    (model_dir / str(STEP) / "saved_model.pb").write_bytes(b"an earlier export")
    with pytest.raises(export.ExportError, match=r"already exists; refusing to overwrite version 7"):
        export.export_saved_model(small_run["model"], str(tmp_path / "serving"), "onegan", STEP)
    rc = export.main(["export", f"--run_dir={small_run['run']}", f"--export_dir={tmp_path / 'serving'}",
                      f"--version={STEP}"])
    assert rc == 2
    assert sorted(os.listdir(model_dir)) == [str(STEP)]
    assert (model_dir / str(STEP) / "saved_model.pb").read_bytes() == b"an earlier export"


def test_a_failed_export_leaves_nothing_behind(small_run, tmp_path, monkeypatch):
    def fail(self):
        raise RuntimeError("tracing failed")

    monkeypatch.setattr(serving.OneGANServing, "signatures", fail)
    with pytest.raises(RuntimeError, match="tracing failed"):
        export.export_saved_model(small_run["model"], str(tmp_path / "serving"), "onegan", 99)
    assert os.listdir(tmp_path / "serving" / "onegan") == []


def test_default_version_is_the_step_or_the_next_free_integer():
    assert export.default_version([], 7) == 7
    assert export.default_version([3], 7) == 7
    assert export.default_version([7], 7) == 8
    assert export.default_version([1, 12], 7) == 13


def test_export_of_a_folder_without_a_run_names_what_is_missing(tmp_path):
    with pytest.raises(export.ExportError, match="config.json"):
        export.load_model(str(tmp_path))


def _error(fn, **inputs):
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn(**{k: tf.constant(v) if not isinstance(v, tf.Tensor) else v for k, v in inputs.items()})
    return str(info.value)


NO_BETAS, NO_SEED = np.zeros((0,), np.float32), np.zeros((0,), np.int64)


@pytest.mark.slow
def test_wrong_image_shapes_are_refused_naming_the_input(loaded):
    segment = loaded.signatures["segment"]
    for shape in ((1, 16, 16, 3), (32, 32, 3), (1, 32, 32, 1)):
        message = _error(segment, image=np.zeros(shape, np.float32), betas=NO_BETAS, seed=NO_SEED)
        assert "input `image` must be float [batch, 32, 32, 3]" in message, message
    message = _error(segment, image=np.full((1, 32, 32, 3), 3.0, np.float32), betas=NO_BETAS, seed=NO_SEED)
    assert "input `image`" in message and "outside [-1, 1]" in message
    message = _error(loaded.signatures["serving_default"], image_bytes=np.array([[b"x"]], object))
    assert "input `image_bytes` must be a 1-D string tensor" in message


@pytest.mark.slow
def test_undecodable_bytes_are_refused_naming_the_input(loaded):
    png = export.signature_inputs("cluster_bytes", CFG, 1)["image_bytes"][0]
    for name in ("serving_default", "cluster_bytes"):
        message = _error(loaded.signatures[name], image_bytes=np.array([png, b"not an image"], object))
        assert "input `image_bytes`: an element is not an encoded JPEG, PNG" in message, message


@pytest.mark.slow
def test_wrong_dtype_is_refused_naming_the_input_position_of_the_table(exported, loaded):
    message = _error(loaded.signatures["segment"], image=np.zeros((1, 32, 32, 3), np.float64), betas=NO_BETAS,
                     seed=NO_SEED)
    assert "input #1" in message and "float" in message, message
    table = export.signature_table(exported["saved_model"])
    assert "| segment | in #1 | `image` | float32 | [-1, 32, 32, 3] (checked in the graph) |" in table


@pytest.mark.slow
def test_bad_controls_and_classes_are_refused_naming_the_input(loaded):
    image = np.zeros((2, 32, 32, 3), np.float32)
    reconstruct, translate, generate = (loaded.signatures[n] for n in ("reconstruct", "translate", "generate"))
    assert "input `betas` must hold 0 values" in _error(reconstruct, image=image, betas=np.ones(3, np.float32),
                                                        seed=NO_SEED)
    assert "input `betas`: each beta must be in [0, 1]" in _error(reconstruct, image=image, seed=NO_SEED,
                                                                  betas=np.array([1, 1, 2, 1], np.float32))
    assert "input `seed` must hold 0 values" in _error(reconstruct, image=image, betas=NO_BETAS,
                                                       seed=np.ones(3, np.int64))
    assert "input `target_child`: class ids must be in [0, 6)" in _error(
        translate, image=image, target_child=np.array([0, 6], np.int32), betas=NO_BETAS, seed=NO_SEED)
    assert "input `target_child` must be integer class ids [batch], one per image" in _error(
        translate, image=image, target_child=np.array([0], np.int32), betas=NO_BETAS, seed=NO_SEED)
    assert "input `child`: class ids must be in [0, 6)" in _error(generate, child=np.array([-1], np.int32),
                                                                  seed=NO_SEED)


def test_bytes_are_centre_cropped_and_resized_to_the_model_size():
    rng = np.random.default_rng(0)
    # Smooth content, so that JPEG's loss stays small.
    wide = (np.linspace(0, 255, 40 * 64 * 3).reshape(40, 64, 3) + rng.integers(0, 8, (40, 64, 3))).astype(np.uint8)
    got = serving.decode_images(tf.constant([tf.io.encode_png(wide).numpy(), tf.io.encode_jpeg(wide).numpy()]), 32)
    centre = tf.cast(wide[:, 12:52], tf.float32)
    want = np.round(tf.image.resize(centre, (32, 32), method="bilinear", antialias=True)) / 127.5 - 1.0
    np.testing.assert_allclose(got[0], want, atol=1e-5)
    assert np.abs(got[1] - want).mean() < 0.05  # JPEG is lossy
    from PIL import Image

    from onegan_tf.data.images import prepare_image  # the tasks CLI prepares image files the same way
    np.testing.assert_allclose(got[0], prepare_image(Image.fromarray(wide), 32), atol=1e-6)
    exact = rng.integers(0, 256, (32, 32, 3), np.uint8)
    np.testing.assert_array_equal(serving.decode_images(tf.constant([tf.io.encode_png(exact).numpy()]), 32)[0],
                                  exact.astype(np.float32) / 127.5 - 1.0)
