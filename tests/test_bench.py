"""`python -m onegan_tf.bench` and the FLOP count it reports."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.tiny import MODEL, REPO, tiny_config, tiny_flags, train_env


def _tiny_model():
    from onegan_tf.model import OneGAN

    return OneGAN(tiny_config().model)


def test_patch_discriminator_flops_match_a_hand_count():
    """D_bg at 32x32, channel_mult 1/8: resize to 30, K4 convs with strides (2, 1, 1), widths 8, 16, 32,
    two K4 heads (docs/design.md §3, networks.D_BG_GEOMETRY)."""
    from onegan_tf import flops

    hand = (2 * 16 * 3 * 8 * 14 * 14        # conv1 30 -> 14
            + 2 * 16 * 8 * 16 * 11 * 11     # conv2 14 -> 11
            + 2 * 16 * 16 * 32 * 8 * 8      # conv3 11 -> 8
            + 2 * (2 * 16 * 32 * 1 * 5 * 5))  # D_bgA, D_bgB 8 -> 5
    assert flops.network_flops(_tiny_model().D_bg) == hand


def test_network_flops_match_tf_profiler():
    """The layer-shape count equals TF's profiler (Conv2D + MatMul ops of the traced forward graph)."""
    from onegan_tf import flops
    from onegan_tf.networks import network_inputs

    model = _tiny_model()
    for name in ("G_bg0", "G_fg2", "E_p", "E_bg", "D_c"):
        net = model.networks[name]
        assert flops.network_flops(net) == flops.profiler_flops(net, network_inputs(name, model.cfg)), name


def test_step_flops_grow_with_the_phases_and_follow_the_convention():
    """Each phase adds its reconstruction path; training FLOPs lie between 2x and 3x the forward FLOPs, and
    the generators count 3x their forward pass."""
    from onegan_tf import flops
    from onegan_tf.trainer import PHASES

    model = _tiny_model()
    tc = tiny_config().train
    steps = [flops.step_flops(model, tc, phase, batch=4) for phase in PHASES]
    assert steps[0]["training"] < steps[1]["training"] < steps[2]["training"]
    for s in steps:
        assert 2 * s["forward"] < s["training"] <= 3 * s["forward"]
    assert steps[0]["by_network"]["G_fg2"] == 3 * 4 * flops.network_flops(model.G_fg2)
    assert steps[2]["by_network"]["G_fg2"] == 3 * 3 * 4 * flops.network_flops(model.G_fg2)  # gen + 2 paths
    assert set(steps[1]["by_call"]) - set(steps[0]["by_call"]) == {
        "D update rec_fake", "reconstruct rec_fake", "L_PER/L_G rec_fake"}


def test_step_calls_are_the_network_calls_of_the_traced_step(monkeypatch):
    """`trainer.step_calls`, which the FLOP count reads, lists the networks the traced step of each phase
    calls, in their order and with their batch sizes (the clones count as their original)."""
    import keras
    import tensorflow as tf

    from onegan_tf.trainer import CLONED_PATHS, PHASES, OneGANTrainer, step_calls, step_noise

    cfg = tiny_config()
    trainer = OneGANTrainer(cfg)
    names = {id(net): key for key, net in trainer.model.networks.items()}
    for path in CLONED_PATHS:
        names.update({id(net): key for key, net in zip(("D_bg", "D_c"), trainer.discriminators(path))})
    b, s = cfg.train.batch_size, cfg.model.image_size
    batch = {k: tf.zeros((b, s, s, 3)) for k in ("x_c", "x_bg")}
    batch.update(step_noise(cfg.train.seed, 0, b, cfg))
    seen = []
    real_call = keras.Layer.__call__

    def recording_call(self, *args, **kwargs):
        if id(self) in names:
            seen.append((names[id(self)], int(tf.nest.flatten(args[0])[0].shape[0]) // b))
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(keras.Layer, "__call__", recording_call)
    for phase in PHASES:
        seen.clear()
        tf.function(trainer._replica_fn(phase)).get_concrete_function(batch)
        assert seen == [(c.network, c.samples) for c in step_calls(phase, cfg.train, cfg.model.bypass)], phase


def test_percentile_interpolates():
    from onegan_tf.bench import percentile

    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)


@pytest.mark.slow
def test_bench_cli_writes_one_json_line_per_measurement(tmp_path):
    out = tmp_path / "bench.jsonl"
    flags = tiny_flags(batch_size=4) + ["--what=train,flops", "--phases=I", "--warmup=1", "--steps=2",
                                       "--ceiling=4,32,32,32,3", f"--out={out}", "--mask_target=auto"]
    proc = subprocess.run([sys.executable, "-m", "onegan_tf.bench", *flags], cwd=REPO, env=train_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["what"], r["name"]) for r in records][:3] == [("train", "phase I"), ("flops", "networks"),
                                                             ("flops", "phase I")]
    assert records[-1]["name"].startswith("ceiling conv")
    for r in records:
        assert {"config", "machine", "loadavg", "time"} <= set(r)
        assert r["config"]["image_size"] == MODEL["image_size"] and r["config"]["batch_size"] == 4
        # --mask_target=auto is estimated from the boxes, as onegan_tf.train does, not refused
        assert re.fullmatch(r"auto:0\.\d{3}", r["config"]["mask_target"])
        assert r["config"]["model"] == {**MODEL, **r["config"]["model"]}  # every model setting, so runs tell apart
        assert {"platform", "cpu_count", "cpu_model", "tensorflow", "devices"} <= set(r["machine"])
    train, _, phase, ceiling = records
    assert train["traces"] == 1 and len(train["step_seconds"]) == 2
    assert train["images_per_s"] == pytest.approx(4 / train["seconds_per_step"])
    assert train["host_peak_rss_mib"] > 0
    assert phase["training_flops"] > 0 and phase["flop_per_s"] == pytest.approx(
        phase["training_flops"] / train["seconds_per_step"])
    assert ceiling["forward_flops"] == 2 * 9 * 32 * 32 * 32 * 32 * 4 and ceiling["flop_per_s"] > 0
    assert "phase I" in proc.stdout and "GFLOP/s" in proc.stdout
    assert "Estimated from the data: mask_target=auto -> " in proc.stdout


@pytest.mark.slow
def test_serving_bench_times_the_saved_model_and_the_in_process_signature(exported):
    """On the session's shared export (conftest): `bench_serving` exports a fresh model the same way."""
    from onegan_tf import bench

    records = bench.time_serving(exported["model"], exported["loaded"], batch_sizes=(1, 2), steps=2, warmup=1)
    assert [(r["target"], r["batch"]) for r in records] == [("saved_model", 1), ("in_process", 1),
                                                            ("saved_model", 2), ("in_process", 2)]
    for r in records:
        assert 0 < r["latency_p50_s"] <= r["latency_p95_s"] and r["images_per_s"] > 0
