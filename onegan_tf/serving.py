"""The serving graph of a trained OneGAN: `OneGANServing`, a `tf.Module` whose signatures `onegan_tf.export`
writes as a SavedModel, and the in-graph decoding and checks of their inputs.

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
`betas` float32, [] = the inference defaults (docs/design.md §4: beta1..beta4 = 1; beta3 = beta4 = 0 for a model
trained without bypass, `model.inference_beta_values`), or 4 values in [0, 1] used for every image, which
must agree with the model's Tab. 3b switches (`OneGAN.check_inference_betas`);
`seed` int64, [] = encoder means instead of samples (reconstruction) or seed (0, 0) (generation), or 2
values: the stateless seed of the reparameterisation noise / of the pose codes z.

Bad inputs fail inside the graph with a message that names the input (`tf.debugging` assertions) before
any network runs: wrong shapes, values out of range, undecodable bytes. Image inputs are therefore declared
of any shape (`saved_model_cli` shows "unknown rank"); `signature_table` lists the shapes they expect. A
signature's dtypes are fixed, so a wrong dtype is refused by TensorFlow itself, which names the input by
its zero-based position among the signature's inputs sorted by name ("input #1"; the table's `in #i`).
"""

from __future__ import annotations

import tensorflow as tf

from onegan_tf.checks import after, check_classes, check_image_values, check_images, check_shape, require
from onegan_tf.config import ModelConfig
from onegan_tf.model import BETA_NAMES, OneGAN, class_predictions, inference_beta_values, sample_eps, sample_z

IMAGE_TASKS = ("segment", "segment_encoder", "cluster", "reconstruct", "translate", "remove_object")
# serving_default first; the order of the docs' table.
SIGNATURES = ("serving_default",) + tuple(f"{t}{s}" for t in IMAGE_TASKS for s in ("", "_bytes")) + ("generate",)
# File signatures decode_image understands: PNG, JPEG, GIF, BMP.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", 8), (b"\xff\xd8\xff", 3), (b"GIF8", 4), (b"BM", 2))


# ---------------------------------------------------------------------------------------- input handling


def center_square_resize(image, size: int):
    """uint8 [H, W, 3] -> float32 [size, size, 3] in [-1, 1]: the central square, resized bilinearly with
    antialiasing and rounded to 8-bit values (as `onegan_tf.data.images.prepare_image` prepares image files).

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
    image_bytes = check_shape(tf.convert_to_tensor(image_bytes), (None,),
                              f"input `{name}` must be a 1-D string tensor [batch] of encoded JPEG/PNG images")

    def decode(encoded):
        known = tf.reduce_any([tf.equal(tf.strings.substr(encoded, 0, n), magic) for magic, n in _MAGIC])
        encoded = after(encoded, require(known, f"input `{name}`: an element is not an encoded JPEG, PNG, GIF or "
                                                "BMP image (undecodable bytes); first bytes:",
                                         tf.strings.substr(encoded, 0, 16)))
        image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
        return center_square_resize(image, size)

    return tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32))


def _optional(value, size: int, name: str, meaning: str):
    """An optional control: [] -> (False, zeros), `size` values -> (True, them); else an error naming `name`."""
    n = tf.size(value)
    n = after(n, require(tf.logical_or(tf.equal(n, 0), tf.equal(n, size)),
                         f"input `{name}` must hold 0 values (the default) or {size} values ({meaning}); got", n))
    # Padding (not tf.cond) keeps the graph valid when the caller's value has a static length of 0.
    return n > 0, tf.concat([tf.reshape(value, (-1,)), tf.zeros((size,), value.dtype)], 0)[:size]


def inference_controls(betas, seed, batch, cfg: ModelConfig):
    """The `betas` and `seed` inputs -> (betas dict, eps dict) for `OneGAN.reconstruct`; [] = the defaults of
    docs/design.md §4."""
    given, values = _optional(betas, 4, "betas", "beta1..beta4, each in [0, 1]")
    values = after(values, require(tf.reduce_max(tf.abs(values - 0.5)) <= 0.5,
                                   "input `betas`: each beta must be in [0, 1]; got", values))
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
        return self._cluster_outputs(self.model.encode(I))

    @staticmethod
    def _cluster_outputs(encoded):
        predicted = class_predictions(encoded)
        return {k: predicted[k] for k in ("child", "parent", "child_probs", "parent_probs")}

    def _reconstruct(self, I, betas, seed, target_child=None):
        batch = tf.shape(I)[0]
        b, eps = inference_controls(betas, seed, batch, self.cfg)
        return self.model.reconstruct(I, betas=self.model.check_inference_betas(b), eps=eps,
                                      target_child=target_child)

    def _segment_encoder(self, I, betas, seed):
        rec = self._reconstruct(I, betas, seed)
        return {"mask": rec["I_m_hat"], **self._cluster_outputs(rec)}

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
        size = self.cfg.image_size
        return check_image_values(check_images(image, size, "image"), size, "image")

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
