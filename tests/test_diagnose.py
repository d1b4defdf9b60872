"""`python -m onegan_tf.diagnose`: its pieces on hand-made cases, and the command on the tiny run of
test_tasks.py (an untrained model: the numbers are checked for range, determinism and agreement with the
model, not for quality)."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_tasks import tiny_run
from tiny import REPO, train_env

from onegan_tf import diagnose as dg
from onegan_tf.checkpoint import load_run
from onegan_tf.config import ModelConfig, parent_of
from onegan_tf.model import OneGAN, sample_children, sample_z
from onegan_tf.pose import discrete_pose, unplace_discrete


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def test_the_probe_reads_a_parent_the_masks_show_and_reports_chance():
    """Masks whose lit quadrant is the parent: a linear read-out is exact; chance is the held-out majority."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 90)
    labels[60:] = [0] * 15 + [1] * 5 + [2] * 5 + [3] * 5
    masks = 0.1 * rng.random((90, 8, 8))
    for i, y in enumerate(labels):
        masks[i, 4 * (y // 2):4 * (y // 2) + 4, 4 * (y % 2):4 * (y % 2) + 4] += 1.0
    probe = dg.ridge_probe(masks[:60], labels[:60], masks[60:], labels[60:], 4)
    assert probe == {"accuracy": 1.0, "chance": 0.5, "n_train": 60, "n_test": 30}


def test_the_probe_is_near_chance_on_masks_that_do_not_show_the_parent():
    rng = np.random.default_rng(1)
    masks, labels = rng.random((600, 8, 8)), rng.integers(0, 4, 600)
    probe = dg.ridge_probe(masks[:400], labels[:400], masks[400:], labels[400:], 4)
    assert probe["accuracy"] < 0.35 and 0.25 <= probe["chance"] < 0.35


def test_the_streamed_correlation_is_pearsons():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4, 4, 3))
    y = 0.5 * x + rng.standard_normal(x.shape)
    corr = dg.Correlation()
    for i in range(0, 6, 4):
        corr.add(x[i:i + 4], y[i:i + 4])
    assert corr.value() == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1])


def test_pooling_averages_blocks():
    masks = np.zeros((1, 32, 32))
    masks[0, :4, :4] = 1.0
    masks[0, 4:8, :4] = 0.5
    pooled = dg.pool(masks)
    assert pooled.shape == (1, 8, 8) and pooled[0, 0, 0] == 1.0 and pooled[0, 1, 0] == 0.5
    assert pooled.sum() == 1.5


def test_diagnostics_agree_with_the_model_and_are_deterministic(run):
    model = load_run(run["run_dir"]).model
    d = dg.diagnose(model, num_images=30, seed=3, batch_size=30)
    assert d == dg.diagnose(model, num_images=30, seed=3, batch_size=30)
    # The same images by hand: the children and z of the one batch, E_p's and E_c's argmax on them.
    key = tf.random.experimental.stateless_split(tf.constant([3, 0], tf.int64), 2)
    child = sample_children(key[0], 30, model.cfg.n_child)
    gen = model.generate(child, sample_z(key[1], 30, model.cfg.d_z))
    rec = model.reconstruct(gen["I"])
    hits = np.argmax(rec["e_p_hat"].numpy(), -1) == parent_of(child, model.cfg.children_per_parent).numpy()
    assert d["encoder_accuracy"]["parent"] == pytest.approx(hits.mean())
    same = np.mean((rec["I_m_hat"].numpy() > 0.5) == (gen["I_m"].numpy() > 0.5))
    assert 0.0 <= d["mask_reproduction_iou"] <= 1.0 and -1.0 <= d["bypass_correlation"]["B_fg_A_fg"] <= 1.0
    assert (d["mask_reproduction_iou"] == 1.0) == (same == 1.0)
    assert d["mask_parent_probe"]["n_train"] == 20 and d["mask_parent_probe"]["n_test"] == 10


def test_under_pose_discrete_the_bypass_is_correlated_in_the_canonical_frame():
    """A_fg is drawn before the pose is applied, B_fg sees the placed object: diagnose compares them as L_MSE
    does, B_fg brought back by the generated image's own discrete pose."""
    keras.utils.set_random_seed(0)
    model = OneGAN(ModelConfig(image_size=32, channel_mult=0.125, n_child=6, n_parent=3, pose_warp=True,
                               pose_discrete=True, pose_mse=True))
    d = dg.diagnose(model, num_images=30, seed=3, batch_size=30)
    key = tf.random.experimental.stateless_split(tf.constant([3, 0], tf.int64), 2)
    z = sample_z(key[1], 30, model.cfg.d_z)
    gen = model.generate(sample_children(key[0], 30, model.cfg.n_child), z)
    B_fg = model.reconstruct(gen["I"])["B_fg"]
    canonical, placed = dg.Correlation(), dg.Correlation()
    canonical.add(unplace_discrete(B_fg, discrete_pose(z)), gen["A_fg"])
    placed.add(B_fg, gen["A_fg"])
    assert d["bypass_correlation"]["B_fg_A_fg"] == pytest.approx(canonical.value(), abs=1e-5)
    assert abs(canonical.value() - placed.value()) > 1e-3      # the two frames differ on these draws


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "onegan_tf.diagnose", *args], cwd=REPO, env=train_env(), check=False,
                          capture_output=True, text=True, timeout=600)


def test_the_command_writes_the_diagnostics_and_prints_chance_beside_them(run, tmp_path):
    out = tmp_path / "diag" / "diagnostics.json"
    proc = _cli(f"--run_dir={run['run_dir']}", f"--out={out}", "--num_images=40", "--batch_size=20")
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = json.loads(out.read_text())
    assert d["step"] == 7 and d["num_images"] == 40 and d["checkpoint"].endswith("ckpt-7")
    assert set(d) >= {"mask_reproduction_iou", "mask_parent_probe", "encoder_accuracy", "bypass_correlation",
                      "command"}
    assert "--num_images=40" in d["command"] and d["generator_weights"] in ("ema", "raw")
    assert "mask reproduction IoU" in proc.stdout and "chance 0.250" in proc.stdout


def test_bad_input_is_named_and_writes_nothing(run, tmp_path, capsys):
    """The command's `main` in this process: the test above starts `python -m onegan_tf.diagnose` already."""
    from onegan_tf import diagnose

    out = tmp_path / "d.json"
    assert diagnose.main(["diagnose", f"--run_dir={run['run_dir']}", f"--out={out}", "--num_images=5"]) == 2
    assert "--num_images=5" in capsys.readouterr().err and not out.exists()
    assert diagnose.main(["diagnose", f"--run_dir={tmp_path / 'nowhere'}", f"--out={out}"]) == 2
    assert "nowhere" in capsys.readouterr().err and not out.exists()
