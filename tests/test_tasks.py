"""Inference tasks (generation, reconstruction/segmentation, clustering, translation, removal), loading a
run directory, user images and the `python -m onegan_tf.tasks` CLI, on a tiny untrained run.

The run directory is written once per session without training: a `OneGANTrainer` saved through
`tf.train.Checkpoint(trainer=...)` exactly as `onegan_tf.train` saves it (`tiny_run`, shared with
test_evaluate.py).
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tiny import REPO, tiny_config, train_env

from onegan_tf import tasks
from onegan_tf.checkpoint import CheckpointMismatchError, find_checkpoint, load_run
from onegan_tf.data import images as user_images

STEP = 7
_RUN = {}


def tiny_run(tmp_path_factory) -> dict:
    """{run_dir, cfg, weights}: a run directory holding config.json and ckpt/ckpt-7 of an untrained trainer."""
    if not _RUN:
        from onegan_tf.files import write_json
        from onegan_tf.trainer import OneGANTrainer

        run_dir = str(tmp_path_factory.mktemp("tiny_run"))
        cfg = tiny_config(run_dir=run_dir, synthetic_train_size=40, synthetic_test_size=12)
        trainer = OneGANTrainer(cfg)
        trainer.step.assign(STEP)
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(trainer=trainer), os.path.join(run_dir, "ckpt"), 2)
        manager.save(checkpoint_number=STEP)
        write_json(os.path.join(run_dir, "config.json"), cfg.to_dict())
        weights = {k: [w.numpy() for w in net.weights] for k, net in trainer.model.networks.items()}
        _RUN.update(run_dir=run_dir, cfg=cfg, weights=weights)
    return _RUN


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="session")
def loaded(run):
    return load_run(run["run_dir"])


@pytest.fixture(scope="session")
def model(loaded):
    return loaded.model


@pytest.fixture(scope="session")
def images():
    return np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)


def _np(d):
    return {k: np.asarray(v) for k, v in d.items()}


# --------------------------------------------------------------------------------------------- loading


def test_load_run_restores_every_weight_and_the_step(run, loaded):
    assert loaded.step == STEP and loaded.checkpoint.endswith("ckpt-7")
    assert loaded.config == run["cfg"]
    for key, net in loaded.model.networks.items():
        for saved, restored in zip(run["weights"][key], net.weights):
            np.testing.assert_array_equal(saved, restored.numpy(), err_msg=f"{key}/{restored.path}")


def test_checkpoint_that_does_not_match_the_config_is_a_clear_error(run, tmp_path):
    other = str(tmp_path / "edited")
    shutil.copytree(run["run_dir"], other)
    cfg = json.load(open(os.path.join(other, "config.json")))
    cfg["model"]["n_child"], cfg["model"]["n_parent"] = 8, 4
    json.dump(cfg, open(os.path.join(other, "config.json"), "w"))
    with pytest.raises(CheckpointMismatchError, match=r"does not match the model of .*config\.json.*n_child=8"):
        load_run(other)


def test_missing_checkpoint_names_the_expected_files(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt-99.index"):
        find_checkpoint(run["run_dir"], os.path.join(run["run_dir"], "ckpt", "ckpt-99"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_run(str(tmp_path))


# ----------------------------------------------------------------------------------------------- tasks


def test_generate_from_child_classes(model):
    out = _np(tasks.generate(model, [0, 5, 11], seed=3))
    assert out["I"].shape == (3, 32, 32, 3) and out["I_m"].shape == (3, 32, 32, 1)
    assert np.abs(out["I"]).max() <= 1.0 and 0.0 <= out["I_m"].min() and out["I_m"].max() <= 1.0
    assert out["parent"].tolist() == [0, 1, 3]  # derived: c // (12 // 4)
    again = _np(tasks.generate(model, [0, 5, 11], seed=3))
    np.testing.assert_array_equal(out["I"], again["I"])


def test_generate_like_uses_the_encoded_classes_and_one_z_per_row(model, images):
    clusters = _np(tasks.cluster(model, images))
    out = _np(tasks.generate_like(model, images, n_per_image=2, seed=1))
    assert out["I"].shape == (6, 32, 32, 3)
    assert out["child"].tolist() == clusters["child"].tolist() * 2
    assert out["parent"].tolist() == clusters["parent"].tolist() * 2
    z = out["z"].reshape(2, 3, -1)
    assert (z[:, :1] == z).all() and not np.allclose(z[0], z[1])
    independent = _np(tasks.generate_like(model, images, n_per_image=1, shared_z=False))["z"]
    assert not np.allclose(independent[0], independent[1])


def test_reconstruct_returns_image_foreground_background_and_mask(model, images):
    out = _np(tasks.reconstruct(model, images))
    for key in ("I_hat", "I_fg_hat", "I_bg_hat"):
        assert out[key].shape == (3, 32, 32, 3) and np.abs(out[key]).max() <= 1.0
    assert out["I_m_hat"].shape == (3, 32, 32, 1)
    assert 0.0 <= out["I_m_hat"].min() and out["I_m_hat"].max() <= 1.0
    assert (out["beta1"] == 1).all() and (out["beta4"] == 1).all()   # inference betas


def test_cluster_ids_are_the_argmax_of_softmax_probabilities(model, images):
    out = _np(tasks.cluster(model, images))
    np.testing.assert_allclose(out["child_probs"].sum(-1), 1.0, rtol=1e-5)
    assert out["child_probs"].shape == (3, 12) and out["parent_probs"].shape == (3, 4)
    assert out["child"].tolist() == out["child_probs"].argmax(-1).tolist()
    np.testing.assert_allclose(out["parent_prob"], out["parent_probs"].max(-1))


def test_translation_replaces_only_the_child_code(model, images):
    plain = _np(tasks.reconstruct(model, images))
    out = _np(tasks.translate(model, images, 4))
    for key in ("pred_child", "pred_parent", "v_bg", "z_hat", "A_bg", "v_pmix", "A_fg", "A_fgmix", "B_fg"):
        np.testing.assert_array_equal(out[key], plain[key], err_msg=key)
    v_c_target = model.V_c(tf.one_hot([4, 4, 4], 12)).numpy()
    np.testing.assert_allclose(out["v_cmix"], v_c_target)
    assert not np.allclose(out["v_cmix"], plain["v_cmix"])
    assert not np.allclose(out["I_fg_hat"], plain["I_fg_hat"])


def test_translation_targets_per_image(model, images):
    out = _np(tasks.translate(model, images, [1, 2, 3]))
    np.testing.assert_allclose(out["v_cmix"], model.V_c(tf.one_hot([1, 2, 3], 12)).numpy())


def test_removed_background_never_receives_the_child_code(model, images, monkeypatch):
    """Î_bg depends on the child code only through the predicted mask: with the mask held fixed, every
    target class gives the same background, and it is the one `remove_object` returns."""
    plain = _np(tasks.reconstruct(model, images))
    removed = _np(tasks.remove_object(model, images))
    np.testing.assert_array_equal(removed["I_bg_hat"], plain["I_bg_hat"])
    np.testing.assert_array_equal(removed["I_m_hat"], plain["I_m_hat"])

    G_fg2 = model.G_fg2

    def fixed_mask(inputs, training=False):
        return {**G_fg2(inputs, training=training), "I_m": tf.constant(plain["I_m_hat"])}

    monkeypatch.setattr(model, "G_fg2", fixed_mask)
    backgrounds = [_np(tasks.translate(model, images, t)) for t in (0, 6, 11)]
    for out in backgrounds:
        np.testing.assert_allclose(out["I_bg_hat"], plain["I_bg_hat"], atol=1e-6)
    assert not np.allclose(backgrounds[0]["I_fg_hat"], backgrounds[2]["I_fg_hat"])


def test_class_labels_outside_the_model_are_refused(model, images):
    with pytest.raises(ValueError, match=r"input `target_child`: class ids must be in \[0, 12\); got \[12 12"):
        tasks.translate(model, images, 12)


# ---------------------------------------------------------------------------------------- image input


def test_user_images_of_any_mode_and_size(tmp_path):
    side = np.zeros((30, 90, 3), np.uint8)
    side[:, :30] = side[:, 60:] = (255, 0, 0)
    side[:, 30:60] = (0, 0, 255)
    Image.fromarray(side).save(tmp_path / "a_wide.png")
    Image.new("L", (20, 40), 128).save(tmp_path / "b_gray.png")
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(tmp_path / "c_cmyk.jpg")
    Image.new("RGBA", (10, 10), (0, 255, 0, 128)).save(tmp_path / "d_rgba.png")
    Image.new("P", (33, 33)).save(tmp_path / "e_palette.png")
    images, paths, skipped = user_images.load_images(str(tmp_path), 32)
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.float32 and not skipped
    assert [os.path.basename(p) for p in paths] == ["a_wide.png", "b_gray.png", "c_cmyk.jpg", "d_rgba.png",
                                                   "e_palette.png"]
    np.testing.assert_allclose(images[0], np.broadcast_to([-1.0, -1.0, 1.0], (32, 32, 3)))  # centre crop
    np.testing.assert_allclose(images[1], 128 / 127.5 - 1.0, atol=1e-6)
    assert images[2, ..., 0].mean() > 0.9 and images[2, ..., 1].mean() < -0.9   # CMYK cyan-free = red
    assert np.abs(images).max() <= 1.0


def _input_folder(root):
    root.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("bird.png", (48, 40)), ("dog.jpg", (100, 64)), ("car.png", (32, 32))):
        Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(root / name)
    (root / "notes.txt").write_text("not an image")
    good = (root / "bird.png").read_bytes()
    (root / "broken.png").write_bytes(good[: len(good) // 3])
    return str(root)


def test_tasks_on_a_folder_skip_and_name_bad_files(model, tmp_path, capsys):
    inputs, out = _input_folder(tmp_path / "in"), str(tmp_path / "out")
    report = tasks.run_tasks(model, "all", [inputs], out, target_child=[2, 9], n_per_image=2, make_figures=True)
    err = capsys.readouterr().err
    assert "notes.txt" in err and "broken.png" in err
    assert sorted(os.path.basename(s["path"]) for s in report["skipped"]) == ["broken.png", "notes.txt"]
    assert [r["name"] for r in report["images"]] == ["bird", "car", "dog"]
    for row in report["images"]:
        assert 0 <= row["child"] < 12 and 0 <= row["parent"] < 4
        assert 0 < row["child_prob"] <= 1 and 0 <= row["mask_area"] <= 1
    saved = json.load(open(os.path.join(out, "results.json")))
    assert saved["images"] == report["images"] and saved["target_child"] == [2, 9]
    lines = open(os.path.join(out, "results.csv")).read().splitlines()
    assert lines[0].startswith("name,path,child,child_prob,parent,parent_prob,mask_area") and len(lines) == 4
    for rel in ("segment/bird_mask.png", "segment/bird_reconstruction.png", "segment/dog_foreground.png",
                "remove/car_background.png", "remove/car_masked.png", "translate/dog_to_child9.png",
                "generate/bird_z1.png"):
        assert Image.open(os.path.join(out, rel)).size == (32, 32), rel
    # Figure grids: 3 images (columns), 2 translation targets, 2 rows of z; 32 px cells, 2 px gaps.
    expected = {"reconstruction": (5, 3), "translation": (4, 3), "conditional_generation": (3, 3),
                "removal": (3, 3), "generation": (4, 8)}
    for name, (rows, cols) in expected.items():
        size = Image.open(os.path.join(out, "figures", f"{name}.png")).size
        assert size == (cols * 34 - 2, rows * 34 - 2), name


def test_tasks_without_readable_images_is_an_error(model, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.txt").write_text("no")
    with pytest.raises(ValueError, match="no readable images"):
        tasks.run_tasks(model, "segment", [str(tmp_path / "in")], str(tmp_path / "out"))


def test_segment_with_a_distilled_segmenter_writes_its_mask_and_the_encoder_mask_beside_it(model, tmp_path):
    from onegan_tf.segmenter import build_segmenter

    segmenter = build_segmenter(model.cfg)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "in" / "bird.png")
    out = str(tmp_path / "out")
    report = tasks.run_tasks(model, "segment", [str(tmp_path / "in")], out, segmenter=segmenter)
    assert report["segmenter"] == "distilled"
    image = tasks.load_images([str(tmp_path / "in")], 32)[0]
    distilled = np.asarray(tasks.segment_distilled(segmenter, image))
    encoder = np.asarray(tasks.reconstruct(model, image)["I_m_hat"])
    row = report["images"][0]
    assert row["mask_area"] == pytest.approx(float(tasks.mask_area(distilled)[0]))
    assert row["mask_area_encoder"] == pytest.approx(float(tasks.mask_area(encoder)[0]))
    for name, mask in (("bird_mask.png", distilled), ("bird_mask_encoder.png", encoder)):
        png = np.asarray(Image.open(os.path.join(out, "segment", name)), np.float32)
        np.testing.assert_allclose(png.reshape(32, 32, -1)[..., 0] / 255, mask[0, ..., 0], atol=1 / 255 + 1e-6)
    with open(os.path.join(out, "results.csv")) as f:
        assert f.readline().strip().endswith("mask_area,mask_area_encoder")


def test_generate_without_inputs_writes_one_image_per_class(model, tmp_path):
    report = tasks.run_tasks(model, "generate", [], str(tmp_path), child=[1, 4])
    assert report["n_images"] == 0
    assert sorted(os.listdir(tmp_path / "generate")) == ["child1_0.png", "child4_1.png"]


@pytest.mark.slow
def test_cli_segment_with_figures(run, tmp_path):
    inputs, out = _input_folder(tmp_path / "in"), str(tmp_path / "out")
    cmd = [sys.executable, "-m", "onegan_tf.tasks", f"--run_dir={run['run_dir']}", "--task=segment",
           f"--inputs={inputs}", f"--out={out}", "--figures"]
    proc = subprocess.run(cmd, env=train_env(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "broken.png" in proc.stderr and "notes.txt" in proc.stderr
    assert "3 image(s) processed, 2 skipped" in proc.stdout
    assert os.path.exists(os.path.join(out, "figures", "reconstruction.png"))
    assert len(json.load(open(os.path.join(out, "results.json")))["images"]) == 3
