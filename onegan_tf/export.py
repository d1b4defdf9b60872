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

The signatures, their inputs and their in-graph checks: `onegan_tf.serving`.

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
from tensorflow.core.protobuf import saved_model_pb2

from onegan_tf import cli
from onegan_tf.checkpoint import CheckpointMismatchError, load_run
from onegan_tf.config import ConfigError, ModelConfig
from onegan_tf.model import OneGAN
from onegan_tf.serving import EXPECTED_SHAPES, SIGNATURES, OneGANServing

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
CONFIG_FILE = os.path.join("assets.extra", "onegan_config.json")  # the ModelConfig, for people and tools



class ExportError(RuntimeError):
    """The export cannot be written as asked (existing version, missing checkpoint); the message says why."""


# ---------------------------------------------------------------------------------------- warmup requests


def _png(size: int, value: int = 128) -> bytes:
    image = np.full((size, size, 3), value, np.uint8)
    image[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = (200, 60, 40)
    return tf.io.encode_png(image).numpy()


def signature_inputs(signature: str, cfg: ModelConfig, batch: int = 1) -> dict:
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
            for key, value in signature_inputs(signature, cfg).items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


# ---------------------------------------------------------------------------------------- runs and exports


def open_run(run_dir: str):
    """`onegan_tf.checkpoint.load_run` of `run_dir`'s newest checkpoint, its errors as ExportError."""
    try:
        return load_run(run_dir)
    except (FileNotFoundError, CheckpointMismatchError, ConfigError) as e:
        raise ExportError(f"--run_dir={run_dir!r}: {e}") from None


def load_model(run_dir: str) -> tuple[OneGAN, int]:
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
    """A Markdown table of every signature's inputs and outputs (name, dtype, shape), read from the SavedModel's
    signature definitions (as TF Serving reads them; nothing is loaded or traced)."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    (meta_graph,) = [m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags]
    rows = ["| signature | | name | dtype | shape |", "|---|---|---|---|---|"]

    with open(os.path.join(saved_model_dir, CONFIG_FILE)) as f:
        size = json.load(f)["image_size"]

    def shape(key, info):
        if info.tensor_shape.unknown_rank:  # declared of any shape, checked in the graph
            return EXPECTED_SHAPES[key].replace("S", str(size)) + " (checked in the graph)"
        return str([d.size for d in info.tensor_shape.dim])  # -1: any size

    for name in SIGNATURES:
        signature = meta_graph.signature_def[name]
        # Inputs in their flat order: TensorFlow's dtype errors name them by this zero-based index ("input #1").
        for kind, infos in (("in", signature.inputs), ("out", signature.outputs)):
            for i, key in enumerate(sorted(infos)):
                label = f"in #{i}" if kind == "in" else "out"
                dtype = tf.dtypes.as_dtype(infos[key].dtype).name
                rows.append(f"| {name} | {label} | `{key}` | {dtype} | {shape(key, infos[key])} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------- command line


def define_flags(fv: flags.FlagValues) -> None:
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
    fv = cli.parse(argv, define_flags, required=("run_dir", ("export_dir", "keras_dir")),
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
