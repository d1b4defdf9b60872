"""The fine-tuning CLI: it learns, and what it saves is a FeatureNet for FID/IS (docs/design.md §7)."""

import os

import numpy as np
import pytest
from PIL import Image

from onegan_tf import classifier, report
from onegan_tf.metrics import feature_network
from tests.tiny import tiny_config


def _write_folder(root, n_per_class=16, size=24, seed=0):
    """Three classes that differ in dominant colour, with noise so the task is not trivial at step 0."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(["blue", "green", "red"]):
        os.makedirs(root / name)
        for i in range(n_per_class):
            image = rng.uniform(0, 120, size=(size, size, 3))
            image[..., 2 - k] += 120
            Image.fromarray(image.astype(np.uint8)).save(root / name / f"{i}.png")
    return str(root)


def test_small_cnn_loss_decreases_and_saved_model_is_a_feature_net(tmp_path):
    data = _write_folder(tmp_path / "data")
    out = str(tmp_path / "clf.keras")
    fit = classifier.train_classifier(data, out, backbone="small_cnn", weights="none", image_size=24,
                                      epochs=6, batch_size=8, val_fraction=0.25, verbose=0)
    loss = fit["history"]["loss"]
    assert loss[-1] < loss[0]
    assert fit["val_accuracy"] == fit["history"]["val_accuracy"][-1]
    assert (fit["train_images"], fit["val_images"], fit["path"]) == (36, 12, out)

    net = feature_network(out)
    assert net.input_size == (24, 24) and net.feature_dim == 128 and net.num_classes == 3
    images = np.random.default_rng(1).uniform(-1, 1, size=(5, 40, 40, 3)).astype(np.float32)  # resized inside
    features, probs = net(images)
    assert features.shape == (5, 128) and probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_cli_trains_and_saves(tmp_path, capsys):
    data = _write_folder(tmp_path / "data", n_per_class=4)
    out = tmp_path / "cli.keras"
    assert classifier.main(["classifier", f"--data={data}", f"--out={out}", "--backbone=small_cnn",
                            "--image_size=16", "--epochs=1", "--batch_size=4", "--val_fraction=0"]) == 0
    assert out.exists()


def test_cli_reports_missing_arguments_and_bad_inputs(tmp_path, capsys):
    assert classifier.main(["classifier", "--data=synthetic"]) == 2
    assert "--data and --out are required" in capsys.readouterr().err
    with pytest.raises(ValueError, match="ending in .keras"):
        classifier.train_classifier("synthetic", str(tmp_path / "model.h5"))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        classifier.train_classifier(str(tmp_path / "nowhere"), str(tmp_path / "m.keras"))
    with pytest.raises(ValueError, match="small_cnn has no pretrained weights"):
        classifier.build_classifier(3, "small_cnn", "imagenet")


def test_synthetic_data_trains_a_classifier_of_child_classes(tmp_path):
    out = str(tmp_path / "synthetic.keras")
    fit = classifier.train_classifier("synthetic", out, backbone="small_cnn", image_size=32, epochs=1,
                                      batch_size=8, num_images=24, val_fraction=0.0, verbose=0)
    assert len(fit["history"]["loss"]) == 1 and fit["val_accuracy"] is None
    assert feature_network(out).num_classes == 12  # 4 parents x 3 children


def test_the_report_trains_its_feature_network_with_the_commands_training(tmp_path, monkeypatch):
    """One training of the feature network: the end of a run calls `fit_classifier` on the training split's
    crops and child labels, with the report's epochs, batch, held-out fraction and the run's seed."""
    cfg = tiny_config(seed=5)
    rng = np.random.default_rng(0)
    train = {"image": rng.uniform(-1, 1, (20, 32, 32, 3)).astype(np.float32), "child": np.arange(20) % 12}
    calls = []

    def fit(images, labels, num_classes, out, **kwargs):
        calls.append((images, labels, num_classes, out, kwargs))
        return {"path": out, "train_images": 18, "val_images": 2, "val_accuracy": 0.5, "history": {}}

    monkeypatch.setattr(classifier, "fit_classifier", fit)
    out = str(tmp_path / "clf.keras")
    assert report.train_feature_classifier(cfg, out, train=train) == {"path": out, "val_accuracy": 0.5,
                                                                      "train_images": 18}
    (images, labels, num_classes, path, kwargs), = calls
    assert images is train["image"] and labels is train["child"] and (num_classes, path) == (12, out)
    assert kwargs == {"epochs": report.CLASSIFIER_EPOCHS, "batch_size": report.CLASSIFIER_BATCH_SIZE,
                      "val_fraction": report.CLASSIFIER_VAL_FRACTION, "seed": 5, "verbose": 0}


def test_the_report_refuses_a_dataset_without_child_labels(tmp_path):
    train = {"image": np.zeros((4, 32, 32, 3), np.float32), "child": -np.ones(4, np.int64)}
    with pytest.raises(ValueError, match="has no child labels"):
        report.train_feature_classifier(tiny_config(), str(tmp_path / "c.keras"), train=train)
