"""`onegan_tf.data.labeled`: the labelled images of the classifier tools, and `cli.parse`."""

import os

import numpy as np
import pytest
from absl import flags
from PIL import Image

from onegan_tf.cli import parse
from onegan_tf.data import labeled


def _save(path, pixels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)


def test_a_folder_gives_centre_cropped_images_in_range_and_sorted_class_labels(tmp_path):
    wide = np.zeros((8, 16, 3), np.uint8)
    wide[:, 4:12] = 255  # the centred square is white, the sides black
    _save(str(tmp_path / "b" / "0.png"), wide)
    _save(str(tmp_path / "a" / "0.png"), np.zeros((8, 8, 3)))
    _save(str(tmp_path / "a" / "1.jpg"), np.zeros((8, 8, 3)))
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    images, labels, classes = labeled.load(str(tmp_path), 4)
    assert classes == ["a", "b"] and labels.tolist() == [0, 0, 1]
    assert images.shape == (3, 4, 4, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(images[2], 1.0)  # the crop kept only the white centre
    np.testing.assert_array_equal(images[0], -1.0)


def test_folder_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        labeled.load(str(tmp_path / "nowhere"), 8)
    _save(str(tmp_path / "only" / "0.png"), np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="found 1 class folder"):
        labeled.load(str(tmp_path), 8)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="class folder 'empty' holds no"):
        labeled.load(str(tmp_path), 8)
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        labeled.load(str(tmp_path), 8)


def test_synthetic_labels_by_child_or_parent_and_rejects_other_kinds():
    images, children, names = labeled.load("synthetic", 16, num_images=12, resolution=32)
    assert images.shape == (12, 16, 16, 3) and images.min() >= -1 and images.max() <= 1
    assert len(names) == 12 and names[0] == "child_0" and children.max() < 12
    _, parents, names = labeled.load("synthetic", 16, num_images=12, label="parent")
    assert names == [f"parent_{i}" for i in range(4)] and parents.max() < 4
    with pytest.raises(ValueError, match="use child or parent"):
        labeled.load("synthetic", 16, num_images=4, label="grandparent")


def _define(fv):
    for name in ("a", "b", "c"):
        flags.DEFINE_string(name, None, name, flag_values=fv)


def test_parse_private_checks_required_flags_and_prints_the_usage(capsys):
    fv = parse(["tool", "--a=1", "--c=2"], _define, required=("a", ("b", "c")), usage="tool --a=X")
    assert fv.a == "1" and fv.c == "2"
    assert parse(["tool", "--a=1"], _define, required=("a", ("b", "c")), usage="tool --a=X") is None
    err = capsys.readouterr().err
    assert "--a and at least one of --b, --c are required" in err and "usage: tool --a=X" in err
    assert parse(["tool", "--b=1"], _define, required=("a", "b", "c")) is None
    assert "--a, --b and --c are required" in capsys.readouterr().err
    assert parse(["tool", "--d=1"], _define) is None
    assert "Unknown command line flag 'd'" in capsys.readouterr().err
