"""Export a trained OneGAN: a SavedModel for TensorFlow Serving, and every sub-network as a `.keras` file.

    python -m onegan_tf.export --run_dir=RUN --export_dir=DIR [--model_name=onegan] [--version=N]
    python -m onegan_tf.export --run_dir=RUN --keras_dir=DIR

**SavedModel** (`export_saved_model`), in TF Serving's layout `<export_dir>/<model_name>/<version>/`. The
version defaults to the checkpoint step, or to the next integer after the newest existing version when that
is larger (TF Serving serves the highest version); an existing version is never overwritten. The model is
written to a hidden temporary folder beside it and renamed into place, so a failed export leaves nothing
half-written. It needs only TensorFlow to load and run (`tf.saved_model.load`, `saved_model_cli`, the
`tensorflow/serving` image), and carries one warmup request per signature in
`assets.extra/tf_serving_warmup_requests`.

Signatures (`OneGANServing`; each calls `OneGAN.encode`, `reconstruct` or `generate`, never a copy):

    serving_default          image_bytes                          -> segment + cluster, inference defaults
    segment[_bytes]          image | image_bytes, betas, seed    -> mask, child, parent, *_probs
    segment_encoder[_bytes]  image | image_bytes, betas, seed    -> the same, mask from the reconstruction path
    cluster[_bytes]          image | image_bytes                  -> child, parent, child_probs, parent_probs
    reconstruct[_bytes]      image | image_bytes, betas, seed    -> I_hat, I_fg_hat, I_bg_hat, I_m_hat
    translate[_bytes]        ... + target_child                   -> I_hat, I_fg_hat, I_bg_hat, I_m_hat
    remove_object[_bytes]    image | image_bytes, betas, seed    -> I_bg_hat
    generate                 child, seed                          -> I, I_fg, I_m, I_bg

`segment`'s mask comes from the segmenter distilled from the generator when the run has one
(`onegan_tf.distill`: one small network; `betas` and `seed` are then checked but do not affect it), else
from the reconstruction path (Î_m, Fig. 4), which `segment_encoder` always serves; child and parent come
from the encoders in both.

`image` is float32 [B, S, S, 3] in [-1, 1] at the model's size S; `image_bytes` is a string [B] of encoded
JPEG/PNG/GIF/BMP files (TF Serving REST: `{"b64": ...}`), decoded inside the graph, centre-cropped to a
square and resized to S (bilinear, antialiased). The REST-first `serving_default` takes bytes alone.

Optional controls are inputs of shape [None] whose empty value means the default (a signature has no
optional inputs: TF Serving requires every input of the signature in every request):
`betas` float32, [] = the inference defaults (SPEC §4: beta1..beta4 = 1; beta3 = beta4 = 0 for a model
trained without bypass, `model.inference_beta_values`), or 4 values in [0, 1] used for every image, which
must agree with the model's Tab. 3b switches (`OneGAN.check_inference_betas`);
`seed` int64, [] = encoder means instead of samples (reconstruction) or seed (0, 0) (generation), or 2
values: the stateless seed of the reparameterisation noise / of the pose codes z.

Bad inputs fail inside the graph with a message that names the input (`tf.debugging` assertions) before
any network runs: wrong shapes, values out of range, undecodable bytes. Image inputs are therefore declared
of any shape (`saved_model_cli` shows "unknown rank"); `signature_table` lists the shapes they expect. A
signature's dtypes are fixed, so a wrong dtype is refused by TensorFlow itself, which names the input by
its zero-based position among the signature's inputs sorted by name ("input #1"; the table's `in #i`).

**Keras files** (`export_keras`): `<keras_dir>/<name>.keras` for each network of `networks.NETWORK_NAMES`
(and `segmenter.keras` when the run has a distilled segmenter, built of Keras' own layers);
`keras.saving.load_model(path)` loads one in safe mode after `import onegan_tf.networks` (which registers
the classes). `python -m onegan_tf.finetune --encoder=<keras_dir>/E_c.keras` fine-tunes the style encoder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags

from onegan_tf.config import ConfigError, ModelConfig
from onegan_tf.flags import parse_private
from onegan_tf.model import BETA_NAMES, OneGAN, inference_beta_values, sample_eps, sample_z

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
CONFIG_FILE = os.path.join("assets.extra", "onegan_config.json")  # the ModelConfig, for people and tools
IMAGE_TASKS = ("segment", "segment_encoder", "cluster", "reconstruct", "translate", "remove_object")
# serving_default first; the order of the docs' table.
SIGNATURES = ("serving_default",) + tuple(f"{t}{s}" for t in IMAGE_TASKS for s in ("", "_bytes")) + ("generate",)
# File signatures decode_image understands: PNG, JPEG, GIF, BMP.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", 8), (b"\xff\xd8\xff", 3), (b"GIF8", 4), (b"BM", 2))


class ExportError(RuntimeError):
    """The export cannot be written as asked (existing version, missing checkpoint); the message says why."""


# ---------------------------------------------------------------------------------------- input handling


def center_square_resize(image, size: int):
    """uint8 [H, W, 3] -> float32 [size, size, 3] in [-1, 1]: the central square, resized bilinearly with
    antialiasing and rounded to 8-bit values (as `onegan_tf.tasks.prepare_image` prepares image files).

    Images already `size` x `size` pass through unresampled, so a PNG of a model-sized image is exact.
    """
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    square = tf.cast(image[top:top + side, left:left + side], tf.float32)
    square = tf.cond(tf.equal(side, size), lambda: square,
                     lambda: tf.round(tf.clip_by_value(
                         tf.image.resize(square, (size, size), method="bilinear", antialias=True), 0.0, 255.0)))
    return tf.ensure_shape(square / 127.5 - 1.0, (size, size, 3))


def decode_images(image_bytes, size: int, name: str = "image_bytes"):
    """string [B] of encoded images -> float32 [B, size, size, 3] in [-1, 1]; names `name` on bad input."""
    shape = tf.shape(image_bytes)
    want = f"input `{name}` must be a 1-D string tensor [batch] of encoded JPEG/PNG images; got shape"
    checks = [tf.debugging.Assert(tf.equal(tf.size(shape), 1), [want, shape], summarize=8)]
    with tf.control_dependencies(checks):
        image_bytes = tf.identity(image_bytes)

    def decode(encoded):
        known = tf.reduce_any([tf.equal(tf.strings.substr(encoded, 0, n), magic) for magic, n in _MAGIC])
        check = tf.debugging.Assert(known, [f"input `{name}`: an element is not an encoded JPEG, PNG, GIF or BMP "
                                            "image (undecodable bytes); first bytes:",
                                            tf.strings.substr(encoded, 0, 16)])
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
        return center_square_resize(image, size)

    return tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32))


def check_images(image, size: int, name: str = "image"):
    """float [B, size, size, 3] in [-1, 1], else an error naming `name`; returns it with its static shape."""
    want = f"input `{name}` must be float32 [batch, {size}, {size}, 3] with values in [-1, 1]"
    shape = tf.shape(image)
    # One assertion on a padded shape: comparing shapes of another rank would fail before any message.
    padded = tf.concat([shape, tf.zeros((4,), tf.int32)], 0)[:4]
    good_shape = tf.logical_and(tf.equal(tf.size(shape), 4), tf.reduce_all(tf.equal(padded[1:], [size, size, 3])))
    checks = [tf.debugging.Assert(good_shape, [f"{want}; got shape", shape], summarize=8)]
    with tf.control_dependencies(checks):
        checks.append(tf.debugging.Assert(tf.reduce_all(tf.abs(image) <= 1.0 + 1e-3),
                                          [f"{want}; got values outside [-1, 1] or NaN"]))
    with tf.control_dependencies(checks):
        return tf.ensure_shape(tf.identity(image), (None, size, size, 3))


def check_classes(classes, n: int, name: str, batch=None):
    """int [B] of class ids in [0, n), else an error naming `name`."""
    shape = tf.shape(classes)
    good = tf.equal(tf.size(shape), 1)
    if batch is not None:
        good = tf.logical_and(good, tf.equal(tf.size(classes), batch))
    checks = [tf.debugging.Assert(good, [f"input `{name}` must be int32 [batch], one class per image; got shape",
                                         shape])]
    with tf.control_dependencies(checks):
        in_range = tf.reduce_all(tf.logical_and(classes >= 0, classes < n))
        checks.append(tf.debugging.Assert(in_range, [f"input `{name}`: class ids must be in [0, {n}); got", classes]))
    with tf.control_dependencies(checks):
        return tf.identity(classes)


def _optional(value, size: int, name: str, meaning: str):
    """An optional control: [] -> (False, zeros), `size` values -> (True, them); else an error naming `name`."""
    n = tf.size(value)
    check = tf.debugging.Assert(tf.logical_or(tf.equal(n, 0), tf.equal(n, size)),
                                [f"input `{name}` must hold 0 values (the default) or {size} values ({meaning}); got",
                                 n])
    with tf.control_dependencies([check]):
        given = n > 0
        # Padding (not tf.cond) keeps the graph valid when the caller's value has a static length of 0.
        return given, tf.concat([tf.reshape(value, (-1,)), tf.zeros((size,), value.dtype)], 0)[:size]


def inference_controls(betas, seed, batch, cfg: ModelConfig):
    """The `betas` and `seed` inputs -> (betas dict, eps dict) for `OneGAN.reconstruct`; [] = SPEC §4 defaults."""
    given, values = _optional(betas, 4, "betas", "beta1..beta4, each in [0, 1]")
    in_range = tf.debugging.assert_less_equal(tf.reduce_max(tf.abs(values - 0.5)), 0.5,
                                              message="input `betas`: each beta must be in [0, 1]")
    with tf.control_dependencies([in_range]):
        # The defaults as the Tab. 3b switches fix them (beta3 = beta4 = 0 without bypass).
        values = tf.where(given, values, tf.constant(inference_beta_values(cfg), values.dtype))
    betas = {name: tf.fill([batch], values[i]) for i, name in enumerate(BETA_NAMES)}
    sample, key = _optional(seed, 2, "seed", "a stateless seed of the reparameterisation noise")
    # Zero noise gives exactly the encoder means (mu + exp(sigma / 2) * 0 = mu).
    eps = {k: v * tf.cast(sample, v.dtype) for k, v in sample_eps(key, batch, cfg).items()}
    return betas, eps


# ---------------------------------------------------------------------------------------- the signatures


# Image inputs are declared of any shape so that a wrong shape reaches the in-graph checks, which name the
# input; a declared shape lets TensorFlow fail first, deep inside, without naming it. Their expected shapes:
EXPECTED_SHAPES = {"image": "[-1, S, S, 3]", "image_bytes": "[-1]"}


def _image_spec():
    return tf.TensorSpec(None, tf.float32, name="image")


_BYTES = tf.TensorSpec(None, tf.string, name="image_bytes")
_BETAS = tf.TensorSpec((None,), tf.float32, name="betas")
_SEED = tf.TensorSpec((None,), tf.int64, name="seed")
_CLASSES = tf.TensorSpec((None,), tf.int32)


class OneGANServing(tf.Module):
    """The serving signatures of one OneGAN; see the module docstring for inputs, outputs and defaults."""

    def __init__(self, model: OneGAN, segmenter=None):
        super().__init__(name="onegan_serving")
        self.model = model
        self.cfg = model.cfg
        if segmenter is not None:
            self.segmenter = segmenter

    # -- task bodies: float images in, named tensors out ----------------------------------------------------
    def _cluster(self, I):
        enc = self.model.encode(I)
        return {"child": tf.argmax(enc["e_c_hat"], -1, output_type=tf.int32),
                "parent": tf.argmax(enc["e_p_hat"], -1, output_type=tf.int32),
                "child_probs": tf.nn.softmax(enc["e_c_hat"]), "parent_probs": tf.nn.softmax(enc["e_p_hat"])}

    def _reconstruct(self, I, betas, seed, target_child=None):
        batch = tf.shape(I)[0]
        if target_child is not None:
            target_child = check_classes(target_child, self.cfg.n_child, "target_child", batch)
        b, eps = inference_controls(betas, seed, batch, self.cfg)
        return self.model.reconstruct(I, betas=self.model.check_inference_betas(b), eps=eps,
                                      target_child=target_child)

    def _segment_encoder(self, I, betas, seed):
        rec = self._reconstruct(I, betas, seed)
        return {"mask": rec["I_m_hat"], "child": rec["pred_child"], "parent": rec["pred_parent"],
                "child_probs": tf.nn.softmax(rec["e_c_hat"]), "parent_probs": tf.nn.softmax(rec["e_p_hat"])}

    def _segment(self, I, betas, seed):
        if not hasattr(self, "segmenter"):
            return self._segment_encoder(I, betas, seed)
        # The same inputs and checks as the reconstruction route, so a client never sees the difference.
        b, _ = inference_controls(betas, seed, tf.shape(I)[0], self.cfg)
        self.model.check_inference_betas(b)
        return {"mask": self.segmenter(I, training=False), **self._cluster(I)}

    @staticmethod
    def _images(rec):
        return {k: rec[k] for k in ("I_hat", "I_fg_hat", "I_bg_hat", "I_m_hat")}

    def _float(self, image):
        return check_images(image, self.cfg.image_size)

    def _decode(self, image_bytes):
        return decode_images(image_bytes, self.cfg.image_size)

    # -- signatures ----------------------------------------------------------------------------------------
    @tf.function(input_signature=[_BYTES])
    def serving_default(self, image_bytes):
        return self._segment(self._decode(image_bytes), tf.zeros((0,)), tf.zeros((0,), tf.int64))

    @tf.function(input_signature=[_image_spec(), _BETAS, _SEED])
    def segment(self, image, betas, seed):
        return self._segment(self._float(image), betas, seed)

    @tf.function(input_signature=[_BYTES, _BETAS, _SEED])
    def segment_bytes(self, image_bytes, betas, seed):
        return self._segment(self._decode(image_bytes), betas, seed)

    @tf.function(input_signature=[_image_spec(), _BETAS, _SEED])
    def segment_encoder(self, image, betas, seed):
        return self._segment_encoder(self._float(image), betas, seed)

    @tf.function(input_signature=[_BYTES, _BETAS, _SEED])
    def segment_encoder_bytes(self, image_bytes, betas, seed):
        return self._segment_encoder(self._decode(image_bytes), betas, seed)

    @tf.function(input_signature=[_image_spec()])
    def cluster(self, image):
        return self._cluster(self._float(image))

    @tf.function(input_signature=[_BYTES])
    def cluster_bytes(self, image_bytes):
        return self._cluster(self._decode(image_bytes))

    @tf.function(input_signature=[_image_spec(), _BETAS, _SEED])
    def reconstruct(self, image, betas, seed):
        return self._images(self._reconstruct(self._float(image), betas, seed))

    @tf.function(input_signature=[_BYTES, _BETAS, _SEED])
    def reconstruct_bytes(self, image_bytes, betas, seed):
        return self._images(self._reconstruct(self._decode(image_bytes), betas, seed))

    @tf.function(input_signature=[_image_spec(), _CLASSES, _BETAS, _SEED])
    def translate(self, image, target_child, betas, seed):
        return self._images(self._reconstruct(self._float(image), betas, seed, target_child))

    @tf.function(input_signature=[_BYTES, _CLASSES, _BETAS, _SEED])
    def translate_bytes(self, image_bytes, target_child, betas, seed):
        return self._images(self._reconstruct(self._decode(image_bytes), betas, seed, target_child))

    @tf.function(input_signature=[_image_spec(), _BETAS, _SEED])
    def remove_object(self, image, betas, seed):
        return {"I_bg_hat": self._reconstruct(self._float(image), betas, seed)["I_bg_hat"]}

    @tf.function(input_signature=[_BYTES, _BETAS, _SEED])
    def remove_object_bytes(self, image_bytes, betas, seed):
        return {"I_bg_hat": self._reconstruct(self._decode(image_bytes), betas, seed)["I_bg_hat"]}

    @tf.function(input_signature=[_CLASSES, _SEED])
    def generate(self, child, seed):
        child = check_classes(child, self.cfg.n_child, "child")
        _, key = _optional(seed, 2, "seed", "the stateless seed of the pose codes z")
        out = self.model.generate(child, sample_z(key, tf.shape(child)[0], self.cfg.d_z))
        return {k: out[k] for k in ("I", "I_fg", "I_m", "I_bg")}

    def signatures(self) -> dict:
        return {name: getattr(self, name).get_concrete_function() for name in SIGNATURES}


# ---------------------------------------------------------------------------------------- warmup requests


def _png(size: int, value: int = 128) -> bytes:
    image = np.full((size, size, 3), value, np.uint8)
    image[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = (200, 60, 40)
    return tf.io.encode_png(image).numpy()


def example_inputs(signature: str, cfg: ModelConfig, batch: int = 1) -> dict:
    """A small valid input of `signature` (numpy arrays by input name): the warmup requests and the tests."""
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (batch, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
    inputs = {"image_bytes": np.array([_png(cfg.image_size, (40 + 60 * i) % 256) for i in range(batch)], object)}
    if signature == "generate":
        return {"child": np.arange(batch, dtype=np.int32) % cfg.n_child, "seed": np.array([0, 1], np.int64)}
    if not signature.endswith("_bytes") and signature != "serving_default":
        inputs = {"image": image}
    task = signature.removesuffix("_bytes")
    if task not in ("cluster", "serving_default"):
        inputs["betas"] = np.zeros((0,), np.float32)
        inputs["seed"] = np.zeros((0,), np.int64)
    if task == "translate":
        inputs["target_child"] = np.arange(batch, dtype=np.int32)[::-1] % cfg.n_child
    return inputs


def write_warmup(saved_model_dir: str, model_name: str, cfg: ModelConfig) -> str:
    """One PredictionLog per signature in assets.extra/tf_serving_warmup_requests (TF Serving's warmup)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature in SIGNATURES:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for key, value in example_inputs(signature, cfg).items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


# ---------------------------------------------------------------------------------------- runs and exports


def open_run(run_dir: str):
    """`onegan_tf.checkpoint.load_run` of `run_dir`'s newest checkpoint, its errors as ExportError."""
    from onegan_tf.checkpoint import CheckpointMismatchError
    from onegan_tf.checkpoint import load_run as load_checkpoint

    try:
        return load_checkpoint(run_dir)
    except (FileNotFoundError, CheckpointMismatchError, ConfigError) as e:
        raise ExportError(f"--run_dir={run_dir!r}: {e}") from None


def load_run(run_dir: str) -> tuple[OneGAN, int]:
    """The OneGAN of `run_dir`'s newest checkpoint and that checkpoint's step (`onegan_tf.checkpoint`)."""
    run = open_run(run_dir)
    return run.model, run.step


def existing_versions(model_dir: str) -> list[int]:
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if d.isdigit())


def default_version(versions: list[int], step: int) -> int:
    """The checkpoint step, or one more than the newest existing version if that is larger (TF Serving serves
    the highest version, so a new export must not hide below an old one)."""
    return max([step] + [v + 1 for v in versions])


def export_saved_model(model: OneGAN, export_dir: str, model_name: str = "onegan", version: int | None = None,
                       step: int = 0, segmenter=None) -> str:
    """Write the serving SavedModel to <export_dir>/<model_name>/<version>/ atomically; returns that path.

    version None: `step`, or one more than the newest existing version when that is larger.
    segmenter: the run's distilled segmenter, which then serves `segment` and `serving_default`.
    """
    model_dir = os.path.join(export_dir, model_name)
    versions = existing_versions(model_dir)
    if version is None:
        version = default_version(versions, step)
    if version < 0:
        raise ExportError(f"--version={version}: TF Serving versions are non-negative integers")
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise ExportError(f"{final} already exists; refusing to overwrite version {version} of model "
                          f"{model_name!r} (existing versions: {versions}). Pass another --version, or leave it out "
                          "to use the next free one.")
    os.makedirs(model_dir, exist_ok=True)
    # A dot-name is not an integer, so TF Serving never loads the half-written folder.
    tmp = tempfile.mkdtemp(dir=model_dir, prefix=f".tmp-{version}-")
    try:
        module = OneGANServing(model, segmenter)
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        write_warmup(tmp, model_name, model.cfg)
        with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
            json.dump(vars(model.cfg), f, indent=2, sort_keys=True)
        if os.path.exists(final):  # appeared while we wrote: still never overwrite
            raise ExportError(f"{final} appeared during the export; refusing to overwrite it")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def export_keras(model: OneGAN, keras_dir: str, segmenter=None) -> dict[str, str]:
    """Save every sub-network (and the distilled segmenter, if given) as <keras_dir>/<name>.keras (all or
    none; existing files are not overwritten)."""
    nets = {**model.networks, **({} if segmenter is None else {"segmenter": segmenter})}
    paths = {name: os.path.join(keras_dir, f"{name}.keras") for name in nets}
    existing = [p for p in paths.values() if os.path.exists(p)]
    if existing:
        raise ExportError(f"--keras_dir={keras_dir!r} already holds {', '.join(map(os.path.basename, existing))}; "
                          "refusing to overwrite. Use an empty or new folder.")
    os.makedirs(keras_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=keras_dir, prefix=".tmp-keras-")
    try:
        for name, net in nets.items():
            net.save(os.path.join(tmp, f"{name}.keras"))
        for name, path in paths.items():
            os.replace(os.path.join(tmp, f"{name}.keras"), path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths


# ---------------------------------------------------------------------------------------- documentation


def signature_table(saved_model_dir: str) -> str:
    """A Markdown table of every signature's inputs and outputs (name, dtype, shape), read from the SavedModel."""
    loaded = tf.saved_model.load(saved_model_dir)
    rows = ["| signature | | name | dtype | shape |", "|---|---|---|---|---|"]

    with open(os.path.join(saved_model_dir, CONFIG_FILE)) as f:
        size = json.load(f)["image_size"]

    def shape(key, spec):
        if spec.shape.rank is None:  # declared of any shape, checked in the graph
            return EXPECTED_SHAPES[key].replace("S", str(size)) + " (checked in the graph)"
        return str([-1 if d is None else d for d in spec.shape.as_list()])

    for name in SIGNATURES:
        fn = loaded.signatures[name]
        # Inputs in their flat order: TensorFlow's dtype errors name them by this zero-based index ("input #1").
        for kind, specs in (("in", fn.structured_input_signature[1]), ("out", fn.structured_outputs)):
            for i, key in enumerate(sorted(specs)):
                label = f"in #{i}" if kind == "in" else "out"
                rows.append(f"| {name} | {label} | `{key}` | {specs[key].dtype.name} | {shape(key, specs[key])} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------- command line


def _define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run_dir", None, "Run directory written by python -m onegan_tf.train (config.json, ckpt/).",
                        flag_values=fv)
    flags.DEFINE_string("export_dir", None, "Base folder of the SavedModel: writes "
                        "<export_dir>/<model_name>/<version>/.", flag_values=fv)
    flags.DEFINE_string("model_name", "onegan", "TF Serving model name (the sub-folder of --export_dir).",
                        flag_values=fv)
    flags.DEFINE_integer("version", None, "TF Serving version (default: the checkpoint step, or the next free "
                         "integer after the newest existing version). Never overwritten.", flag_values=fv)
    flags.DEFINE_string("keras_dir", None, "Also (or only) save every sub-network as <keras_dir>/<name>.keras.",
                        flag_values=fv)
    flags.DEFINE_boolean("print_table", False, "Print the Markdown table of the signatures after the export.",
                         flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    fv = parse_private(argv, _define_flags, required=("run_dir", ("export_dir", "keras_dir")),
                       usage="python -m onegan_tf.export --run_dir=RUN (--export_dir=DIR [--model_name=onegan] "
                       "[--version=N] | --keras_dir=DIR)")
    if fv is None:
        return 2
    try:
        run = open_run(fv.run_dir)
        model, step = run.model, run.step
        if fv.export_dir is not None:
            path = export_saved_model(model, fv.export_dir, fv.model_name, fv.version, step, run.segmenter)
            print(f"saved {path} (signatures: {', '.join(SIGNATURES)}); inspect with: saved_model_cli show --all "
                  f"--dir {path}")
            if fv.print_table:
                print(signature_table(path))
        if fv.keras_dir is not None:
            paths = export_keras(model, fv.keras_dir, run.segmenter)
            print(f"saved {len(paths)} sub-networks to {fv.keras_dir}; load one with keras.saving.load_model after "
                  "`import onegan_tf.networks`")
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
