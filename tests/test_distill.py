"""The EMA generator (onegan_tf.ema) and the segmenter distilled from generated pairs (onegan_tf.distill).

The EMA: its decay against a hand computation of StyleGAN2-ADA's formula, one update against a hand lerp,
and one training step's shadow against the raw weights it averaged. Then one tiny run end to end: train the
schedule and the distillation, rewind it to a mid-training checkpoint and resume (the shadow and the
segmenter must come out exactly as in the uninterrupted run), re-distil the finished run with other
distillation settings (--distill_from), export the SavedModel and serve `segment` from a fresh process that
has only TensorFlow and Keras.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import tiny_config, train_env

from onegan_tf.config import ConfigError
from onegan_tf.distill import augment_pairs, distillation_target, segmentation_loss
from onegan_tf.ema import AVERAGED, ema_beta, ema_update


def test_ema_beta_is_half_per_half_life_with_the_rampup_capping_it():
    # Half-life 10 images (ema_kimg 0.01), batch 4, ramp-up 0.5: after 8 images the half-life is
    # min(10, 0.5 * 8) = 4 images, so one batch of 4 halves the shadow's share: beta = 0.5.
    assert float(ema_beta(8, 4, 0.01, 0.5)) == pytest.approx(0.5)
    # After 100 images the cap min(10, 50) = 10 is the half-life itself: beta = 0.5 ** (4 / 10).
    assert float(ema_beta(100, 4, 0.01, 0.5)) == pytest.approx(0.5 ** 0.4)
    # Without a ramp-up the half-life holds from the start; with one, the first update copies the weights.
    assert float(ema_beta(0, 4, 0.01, 0.0)) == pytest.approx(0.5 ** 0.4)
    assert float(ema_beta(0, 4, 0.01, 0.5)) == 0.0


def test_ema_update_moves_the_shadow_from_the_weights_by_beta():
    shadow, weights = tf.Variable([1.0, 2.0]), tf.Variable([3.0, 6.0])
    ema_update([shadow], [weights], 0.25)
    # w + (shadow - w) * beta = [3 - 2 * 0.25, 6 - 4 * 0.25]
    np.testing.assert_allclose(shadow.numpy(), [2.5, 5.0])
    np.testing.assert_allclose(weights.numpy(), [3.0, 6.0])


def test_a_training_step_averages_the_generators_into_the_shadow():
    from onegan_tf import data
    from onegan_tf.trainer import OneGANTrainer, step_noise

    # Half-life 8 images = two batches of 4, no ramp-up: beta = 0.5 ** (4 / 8) at every step.
    cfg = tiny_config(ema_kimg=0.008, ema_rampup=0.0)
    beta = 0.5 ** 0.5
    trainer = OneGANTrainer(cfg)
    assert set(trainer.ema.networks) == set(AVERAGED) and not hasattr(trainer.ema, "E_c")
    before = {k: [w.numpy() for w in getattr(trainer.ema, k).weights] for k in AVERAGED}
    x_c, x_bg = data.train_streams(cfg.data, cfg.model.image_size, cfg.train.batch_size, cfg.train.seed, 0)
    batch = {"x_c": next(iter(x_c)), "x_bg": next(iter(x_bg)), **step_noise(0, 0, cfg.train.batch_size, cfg)}
    trainer.train_step(batch, "I")
    changed = 0
    for key in AVERAGED:
        for old, raw, new in zip(before[key], getattr(trainer.model, key).weights, getattr(trainer.ema, key).weights):
            np.testing.assert_allclose(new.numpy(), raw.numpy() + (old - raw.numpy()) * beta, rtol=1e-6, atol=1e-7)
            changed += int(not np.allclose(old, raw.numpy()))
    assert changed, "the step changed no generator weight; the test would prove nothing"
    # The generation model shares the encoders and swaps in the shadow generators.
    gen = trainer.generation_model
    assert gen.G_fg2 is trainer.ema.G_fg2 and gen.E_c is trainer.model.E_c


def test_distillation_targets_soft_masks_or_thresholded_ones():
    I_m = tf.constant([[[[0.2], [0.7]]]])
    np.testing.assert_allclose(distillation_target(I_m, "soft").numpy(), I_m.numpy())
    np.testing.assert_allclose(distillation_target(I_m, "hard").numpy(), [[[[0.0], [1.0]]]])
    # Binary cross-entropy by hand: -(0.7 log 0.9 + 0.3 log 0.1) for one pixel.
    loss = segmentation_loss(tf.constant([[[[0.7]]]]), tf.constant([[[[0.9]]]]))
    assert float(loss) == pytest.approx(-(0.7 * np.log(0.9) + 0.3 * np.log(0.1)), rel=1e-5)


def _pairs(n=16, size=8):
    """Images whose first channel is the mask (scaled to [-1, 1]) and whose other channels are noise."""
    mask = tf.cast(tf.random.stateless_uniform([n, size, size, 1], [1, 2]) > 0.5, tf.float32)
    noise = tf.random.stateless_uniform([n, size, size, 2], [3, 4], -1.0, 1.0)
    return tf.concat([2.0 * mask - 1.0, noise], -1), mask


def test_augmentations_move_the_mask_with_the_image():
    image, mask = _pairs()
    key = tf.constant([5, 6], tf.int64)
    for augment in (("flip",), ("scale",), ("flip", "scale")):
        out, out_mask = augment_pairs(key, image, mask, augment)
        assert out.shape == image.shape and out_mask.shape == mask.shape
        # Image and mask went through the same geometry, so the first channel is still the mask.
        np.testing.assert_allclose((out[..., :1].numpy() + 1.0) / 2.0, out_mask.numpy(), atol=1e-5)
        moved = np.any(np.abs(out_mask.numpy() - mask.numpy()) > 1e-3, axis=(1, 2, 3))
        assert 0 < moved.sum() <= len(moved), augment
    # A flip is a mirror or nothing, per sample (about half of them).
    flipped, flipped_mask = augment_pairs(key, image, mask, ("flip",))
    mirrored = np.all(flipped_mask.numpy() == mask.numpy()[:, :, ::-1], axis=(1, 2, 3))
    kept = np.all(flipped_mask.numpy() == mask.numpy(), axis=(1, 2, 3))
    assert np.all(mirrored | kept) and 0 < mirrored.sum() < len(mirrored)
    # Colour jitter changes the image only, within [-1, 1]; the same key draws the same augmentation.
    out, out_mask = augment_pairs(key, image, mask, ("colour",))
    np.testing.assert_array_equal(out_mask.numpy(), mask.numpy())
    assert not np.allclose(out.numpy(), image.numpy()) and float(tf.reduce_max(tf.abs(out))) <= 1.0
    np.testing.assert_array_equal(augment_pairs(key, image, mask, ("colour",))[0].numpy(), out.numpy())


def test_cosine_decay_brings_the_distillation_rate_to_zero_and_width_scales_the_segmenter():
    from onegan_tf.distill import Distiller
    from onegan_tf.segmenter import segmenter_widths

    cfg = tiny_config(distill_steps=10, distill_cosine=True, distill_learning_rate=1e-3)
    optimizer = Distiller(cfg).optimizer
    for step, rate in ((0, 1e-3), (5, 0.5e-3), (10, 0.0)):
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(rate, abs=1e-9)
    constant = Distiller(tiny_config(distill_steps=10)).optimizer
    constant.iterations.assign(10)
    assert float(constant.learning_rate) == pytest.approx(1e-3)
    wide = segmenter_widths(tiny_config(distill_width=2.0).model, 2.0)
    assert wide == tuple(2 * w for w in segmenter_widths(cfg.model))


def test_flip_averaged_segmenter_is_the_mean_over_the_mirror_and_loads_with_keras_alone(tmp_path):
    from onegan_tf.segmenter import build_segmenter, flip_averaged

    segmenter = build_segmenter(tiny_config().model)
    for w in segmenter.weights:  # weights far from symmetric, so that the mirror matters
        w.assign(tf.random.stateless_normal(w.shape, [7, len(w.name)], stddev=0.3))
    x = tf.random.stateless_uniform([3, 32, 32, 3], [8, 9], -1.0, 1.0)
    want = 0.5 * (segmenter(x) + tf.reverse(segmenter(tf.reverse(x, [2])), [2])).numpy()
    assert not np.allclose(segmenter(x).numpy(), want, atol=1e-3), "a flip-invariant segmenter proves nothing"
    averaged = flip_averaged(segmenter)
    np.testing.assert_allclose(averaged(x).numpy(), want, atol=1e-5)
    path = str(tmp_path / "segmenter.keras")
    averaged.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(x).numpy(), want, atol=1e-5)


def test_config_refuses_an_ema_that_does_not_exist_and_unknown_targets():
    with pytest.raises(ConfigError, match="generator_weights='ema' needs an EMA"):
        tiny_config(ema_kimg=0.0)
    tiny_config(ema_kimg=0.0, generator_weights="raw")
    with pytest.raises(ConfigError, match="distill_target"):
        tiny_config(distill_target="fuzzy")
    with pytest.raises(ConfigError, match="distill_augment='flip,blur': unknown \\['blur'\\]"):
        tiny_config(distill_augment="flip,blur")
    assert tiny_config(distill_augment=" flip, colour").train.distill_augmentations == ("flip", "colour")
    with pytest.raises(ConfigError, match="distill_width"):
        tiny_config(distill_width=0.0)


# ------------------------------------------------------------------------------------------ end to end

DISTILL_STEPS = 2
# Phase I alone: the EMA, the distillation and their checkpoints do not depend on the phase, and each phase
# costs a trace of its own step.
SCHEDULE = {"phase1_steps": 2, "phase2a_steps": 0, "phase2b_steps": 0}


def _state(ckpt_prefix: str, prefix: str) -> dict:
    return {name: tf.train.load_variable(ckpt_prefix, name) for name, _ in tf.train.list_variables(ckpt_prefix)
            if name.startswith(prefix)}


def _assert_same_state(a_prefix: str, b_prefix: str, prefix: str) -> None:
    a, b = _state(a_prefix, prefix), _state(b_prefix, prefix)
    assert a and a.keys() == b.keys(), prefix
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-6, atol=1e-7, err_msg=name)


def _config(run_dir: str, **overrides):
    return tiny_config(**{"run_dir": run_dir, "distill_steps": DISTILL_STEPS, "ckpt_every": 1,
                          "keep_checkpoints": 10, "ema_kimg": 0.004, "ema_rampup": 0.0, "seed": 3, **SCHEDULE,
                          **overrides})


@pytest.mark.slow
def test_distillation_trains_checkpoints_resumes_redistils_exports_and_serves(tmp_path, monkeypatch):
    from onegan_tf import export
    from onegan_tf.checkpoint import load_run
    from onegan_tf.train import IncompatibleRunError, train

    monkeypatch.setenv("TF_DETERMINISTIC_OPS", "1")
    full = str(tmp_path / "full")
    summary = train(_config(full))
    steps = summary["end_step"]
    final = os.path.join(full, "ckpt", f"ckpt-{steps + DISTILL_STEPS}")
    assert summary["checkpoint"] == final
    assert os.path.exists(os.path.join(full, "segmenter.keras"))
    with open(os.path.join(full, "metrics.jsonl")) as f:
        logged = [json.loads(line) for line in f]
    assert [r["step"] for r in logged if r["phase"] == "distill"] == list(range(steps + 1, steps + DISTILL_STEPS + 1))
    assert all(np.isfinite(r["distill/L_BCE"]) for r in logged if r["phase"] == "distill")
    # The summary keeps the schedule's last losses beside the distillation's.
    assert "total/L_GEN" in summary["final_losses"] and "distill/L_BCE" in summary["final_losses"]

    # Rewind a copy to the checkpoint of step 1 (inside the schedule) and resume it with the same settings: the
    # shadow, updated again after the restore, and the segmenter must come out as in the uninterrupted run.
    resumed = str(tmp_path / "resumed")
    shutil.copytree(full, resumed)
    os.remove(os.path.join(resumed, "segmenter.keras"))
    ckpt_dir = os.path.join(resumed, "ckpt")
    for name in os.listdir(ckpt_dir):
        if name.startswith("ckpt-") and int(name.split("-")[1].split(".")[0]) > 1:
            os.remove(os.path.join(ckpt_dir, name))
    tf.compat.v1.train.update_checkpoint_state(ckpt_dir, os.path.join(ckpt_dir, "ckpt-1"))
    # An unfinished schedule is not distilled from.
    with pytest.raises(IncompatibleRunError, match="not at the end of the schedule"):
        train(_config(str(tmp_path / "early"), distill_from=resumed))
    summary = train(_config(resumed))
    assert summary["start_step"] == 1
    again = os.path.join(resumed, "ckpt", f"ckpt-{steps + DISTILL_STEPS}")
    for prefix in ("trainer/ema/", "trainer/distiller/"):
        _assert_same_state(final, again, prefix)

    # Re-distil the finished run with other distillation settings: the schedule's state is the source's,
    # untouched; the segmenter is trained anew, on half real images with the encoders' masks and generated
    # objects on real backgrounds. A schedule setting that differs is refused, naming it.
    with pytest.raises(IncompatibleRunError, match="train.weight_RM"):
        train(_config(str(tmp_path / "other"), distill_from=full, weight_RM=1.0))
    redo = str(tmp_path / "redo")
    summary = train(_config(redo, distill_from=full, distill_target="hard", distill_real=0.5,
                            distill_real_backgrounds=0.5, distill_augment="flip,scale,colour",
                            distill_cosine=True, distill_width=2.0, distill_flip_average=True))
    assert summary["distilled_from"] == final and summary["start_step"] == summary["end_step"] == steps
    remade = os.path.join(redo, "ckpt", f"ckpt-{steps + DISTILL_STEPS}")
    schedule = {name for name, _ in tf.train.list_variables(final)
                if name.startswith("trainer/") and not name.startswith("trainer/distiller/")}
    assert len(schedule) > 100 and schedule <= {name for name, _ in tf.train.list_variables(remade)}
    for name in schedule:
        np.testing.assert_array_equal(tf.train.load_variable(remade, name), tf.train.load_variable(final, name),
                                      err_msg=name)
    assert int(tf.train.load_variable(remade, "trainer/distiller/step/.ATTRIBUTES/VARIABLE_VALUE")) == DISTILL_STEPS
    # A segmenter kernel: the new segmenter is twice as wide (--distill_width=2), so nothing of the source's
    # segmenter was carried over.
    name = "trainer/distiller/optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"
    assert tf.train.load_variable(remade, name).shape[-1] == 2 * tf.train.load_variable(final, name).shape[-1]
    with open(os.path.join(redo, "metrics.jsonl")) as f:
        logged = [json.loads(line) for line in f]
    assert logged and all({"distill/IoU_generator", "distill/IoU_encoder"} <= r.keys() for r in logged)
    # The re-distilled segmenter is twice as wide and shipped flip-averaged, from the checkpoint and the file.
    shipped = load_run(redo).segmenter
    trained = shipped.get_layer("segmenter")
    assert trained.get_layer("down0_conv1").filters == 2 * load_run(full).segmenter.get_layer("down0_conv1").filters
    x = tf.random.stateless_uniform([2, 32, 32, 3], [1, 1], -1.0, 1.0)
    want = 0.5 * (trained(x) + tf.reverse(trained(tf.reverse(x, [2])), [2])).numpy()
    np.testing.assert_allclose(shipped(x).numpy(), want, atol=1e-5)
    np.testing.assert_allclose(keras.saving.load_model(os.path.join(redo, "segmenter.keras"))(x).numpy(), want,
                               atol=1e-5)

    # The run loads with the shadow generators and the segmenter; export, then serve from a fresh process.
    run, raw = load_run(resumed), load_run(resumed, weights="raw")
    assert run.weights == "ema" and run.segmenter is not None
    assert not np.allclose(run.model.G_fg0.weights[0].numpy(), raw.model.G_fg0.weights[0].numpy())
    np.testing.assert_array_equal(run.model.E_c.weights[0].numpy(), raw.model.E_c.weights[0].numpy())
    path = export.export_saved_model(run.model, str(tmp_path / "serving"), "onegan", step=run.step,
                                     segmenter=run.segmenter)
    image = export.signature_inputs("segment", run.config.model, 3)["image"]
    expected = run.segmenter(image).numpy()
    script = (
        "import sys, json, numpy as np, tensorflow as tf, keras\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "x = np.load(sys.argv[3])\n"
        "e = tf.zeros((0,)); s = tf.zeros((0,), tf.int64)\n"
        "seg = m.signatures['segment'](image=x, betas=e, seed=s)['mask'].numpy()\n"
        "enc = m.signatures['segment_encoder'](image=x, betas=e, seed=s)['mask'].numpy()\n"
        "k = keras.saving.load_model(sys.argv[2])(x).numpy()\n"
        "np.savez(sys.argv[4], segment=seg, segment_encoder=enc, keras=k)\n"
        "print(json.dumps(any(n.startswith('onegan_tf') for n in sys.modules)))\n")
    np.save(tmp_path / "x.npy", image)
    proc = subprocess.run([sys.executable, "-c", script, path, os.path.join(resumed, "segmenter.keras"),
                           str(tmp_path / "x.npy"), str(tmp_path / "out.npz")],
                          cwd=str(tmp_path), env={**train_env(), "PYTHONPATH": ""}, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) is False, "the server imported onegan_tf"
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["segment"], expected, atol=1e-5)
    np.testing.assert_allclose(out["keras"], expected, atol=1e-5)
    encoder = np.asarray(run.model.reconstruct(image)["I_m_hat"])
    np.testing.assert_allclose(out["segment_encoder"], encoder, atol=1e-4)
    assert not np.allclose(out["segment"], out["segment_encoder"], atol=1e-3)
