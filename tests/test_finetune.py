"""`python -m onegan_tf.finetune`: E_c from its `.keras` file as the backbone of a few-shot classifier."""

import os

import keras
import numpy as np
import pytest
from PIL import Image

from onegan_tf import finetune
from onegan_tf.config import ModelConfig
from onegan_tf.networks import build_networks

CFG = ModelConfig(image_size=32, channel_mult=0.125, n_child=12, n_parent=4)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("nets") / "E_c.keras")
    keras.utils.set_random_seed(0)
    build_networks(CFG)["E_c"].save(path)
    return path


def test_few_shot_split_takes_k_images_per_class_and_validates_on_the_rest():
    labels = np.repeat(np.arange(3), 10)
    train, val = finetune.few_shot_split(labels, shots_per_class=2, val_per_class=4, seed=0)
    assert np.bincount(labels[train]).tolist() == [2, 2, 2]
    assert np.bincount(labels[val]).tolist() == [4, 4, 4]
    assert not set(train) & set(val)
    train_all, val_all = finetune.few_shot_split(labels, 0, 4, 0)
    assert len(train_all) == 18 and len(val_all) == 12


@pytest.mark.slow
def test_finetuning_on_synthetic_few_shot_decreases_the_loss_and_saves_a_loadable_classifier(encoder_file, tmp_path):
    out = str(tmp_path / "clf.keras")
    history = finetune.finetune(encoder_file, "synthetic", out, epochs=6, shots_per_class=4, val_per_class=2,
                                batch_size=16, learning_rate=3e-3, num_images=72, verbose=0)
    loss = history.history["loss"]
    assert history.split == {"train": 48, "val": 24}
    assert loss[-1] < 0.8 * loss[0], loss
    clf = keras.saving.load_model(out)  # safe mode; onegan_tf.networks is imported by this test module
    assert clf.output_shape == (None, 12)
    assert type(clf.get_layer("E_c")).__name__ == "StyleEncoder"


@pytest.mark.slow
def test_a_frozen_backbone_keeps_the_encoder_weights(encoder_file, tmp_path):
    out = str(tmp_path / "probe.keras")
    before = [w.numpy() for w in keras.saving.load_model(encoder_file).weights]
    history = finetune.finetune(encoder_file, "synthetic", out, epochs=3, shots_per_class=2, val_per_class=0,
                                freeze_backbone=True, num_images=36, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    after = [w.numpy() for w in keras.saving.load_model(out).get_layer("E_c").weights]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_command_line_on_an_image_folder(encoder_file, tmp_path, capsys):
    rng = np.random.default_rng(0)
    for c, colour in enumerate(((220, 40, 40), (40, 40, 220))):
        os.makedirs(tmp_path / "data" / f"class_{c}")
        for i in range(3):
            pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (40, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / f"class_{c}" / f"{i}.png")
    out = str(tmp_path / "clf.keras")
    rc = finetune.main(["finetune", f"--encoder={encoder_file}", f"--data={tmp_path / 'data'}", f"--out={out}",
                        "--epochs=2", "--shots_per_class=2", "--val_per_class=1", "--batch_size=4"])
    assert rc == 0 and os.path.exists(out)
    assert "2 classes, 4 training images" in capsys.readouterr().out


def test_command_line_names_what_is_wrong(encoder_file, tmp_path, capsys):
    assert finetune.main(["finetune", "--data=synthetic", f"--out={tmp_path / 'x.keras'}"]) == 2
    assert finetune.main(["finetune", f"--encoder={tmp_path / 'missing.keras'}", "--data=synthetic",
                          f"--out={tmp_path / 'x.keras'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert finetune.main(["finetune", f"--encoder={encoder_file}", f"--data={tmp_path / 'nowhere'}",
                          f"--out={tmp_path / 'x.keras'}"]) == 2
    assert "not a folder" in capsys.readouterr().err
