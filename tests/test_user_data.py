"""Users' own data (data/README.md): CUB-format trees of any class count, and training without boxes."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from onegan_tf.config import Config, ConfigError, DataConfig, ModelConfig
from onegan_tf.data import pipeline, protocol
from onegan_tf.data.sources import DataError

SIZE = 32
N_CLASSES, N_PARENTS = 12, 4
# A grouping that is not contiguous blocks, so the test sees the file was read: class c -> parent c % 4.
PARENT_OF_CLASS = {c: (c - 1) % N_PARENTS + 1 for c in range(1, N_CLASSES + 1)}


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _write_cub_tree(root, per_class=2):
    """A CUB-format tree (no CUB_200_2011/ level) of 12 classes; image 1 is grayscale, image 2 CMYK and
    image 3 a truncated JPEG. Returns {image_id: class_id}."""
    tables = {name: [] for name in ("images.txt", "image_class_labels.txt", "bounding_boxes.txt")}
    labels = {}
    rng = np.random.default_rng(0)
    for i in range(1, N_CLASSES * per_class + 1):
        cls = (i - 1) % N_CLASSES + 1
        rel = f"{cls:03d}.Bird_{cls}/Bird_{cls}_{i:04d}.jpg"
        os.makedirs(root / "images" / os.path.dirname(rel), exist_ok=True)
        image = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
        data = _jpeg(image.convert("L") if i == 1 else image.convert("CMYK") if i == 2 else image)
        (root / "images" / rel).write_bytes(data[:len(data) // 2] if i == 3 else data)
        tables["images.txt"].append(f"{i} {rel}")
        tables["image_class_labels.txt"].append(f"{i} {cls}")
        tables["bounding_boxes.txt"].append(f"{i} 10.0 8.0 20.0 16.0")
        labels[i] = cls
    tables["classes.txt"] = [f"{c} {c:03d}.Bird_{c}" for c in range(1, N_CLASSES + 1)]
    tables["class_parents.txt"] = [f"{c} {p}" for c, p in PARENT_OF_CLASS.items()]
    for name, rows in tables.items():
        (root / name).write_text("\n".join(rows) + "\n")
    return labels


def _eval_labels(cfg, classes=None):
    children, parents = [], []
    for batch in pipeline.eval_dataset(cfg, SIZE, 8, "all", classes=classes):
        children += batch["child"].numpy().tolist()
        parents += batch["parent"].numpy().tolist()
    return children, parents


# ----------------------------------------------------------------------------------------------- CUB


def test_cub_tree_reads_its_class_count_and_parent_file(tmp_path):
    _write_cub_tree(tmp_path)
    cfg = DataConfig(dataset="cub", data_dir=str(tmp_path), class_parents=str(tmp_path / "class_parents.txt"))
    info = pipeline.describe(cfg)
    assert (info["n_child"], info["n_parent"]) == (N_CLASSES, N_PARENTS)
    # grayscale and CMYK are read; the truncated JPEG is skipped and named
    assert info["n_images"]["all"] == 2 * N_CLASSES - 1
    assert info["n_corrupt"] == 1 and info["corrupt_files"][0].endswith("Bird_3_0003.jpg")
    children, parents = _eval_labels(cfg)
    assert set(children) == set(range(N_CLASSES))
    assert parents == [PARENT_OF_CLASS[c + 1] - 1 for c in children]
    x_c, x_bg = pipeline.train_streams(cfg, SIZE, 4, seed=0)
    assert next(iter(x_c)).shape == (4, SIZE, SIZE, 3) and next(iter(x_bg)).shape == (4, SIZE, SIZE, 3)


def test_cub_tree_without_parent_file_takes_contiguous_blocks_of_the_model(tmp_path):
    _write_cub_tree(tmp_path)
    cfg = DataConfig(dataset="cub", data_dir=str(tmp_path))
    assert (pipeline.describe(cfg)["n_child"], pipeline.describe(cfg)["n_parent"]) == (N_CLASSES, None)
    children, parents = _eval_labels(cfg, classes=(N_CLASSES, N_PARENTS))
    assert parents == [c // (N_CLASSES // N_PARENTS) for c in children]


def test_training_checks_the_model_against_the_tree(tmp_path):
    from onegan_tf.train import check_data

    _write_cub_tree(tmp_path)
    data = DataConfig(dataset="cub", data_dir=str(tmp_path), class_parents=str(tmp_path / "class_parents.txt"))
    check_data(Config(model=ModelConfig(n_child=N_CLASSES, n_parent=N_PARENTS), data=data))
    with pytest.raises(ConfigError, match=f"--n_child=200 but dataset 'cub' has {N_CLASSES} classes"):
        check_data(Config(model=ModelConfig(), data=data))
    with pytest.raises(ConfigError, match=f"has {N_PARENTS} classes; set --n_parent={N_PARENTS} "
                                          r"\(or more parent codes"):
        check_data(Config(model=ModelConfig(n_child=N_CLASSES, n_parent=2), data=data))
    # More parent codes than the tree's parents are accepted: the report merges them (docs/design.md §7).
    check_data(Config(model=ModelConfig(n_child=N_CLASSES, n_parent=6), data=data))


@pytest.mark.parametrize("file, line_no, content, at_line, message", [
    ("image_class_labels.txt", 5, "5 13", True, "class 13 is outside 1..12"),
    ("image_class_labels.txt", 5, "5 birds", True, "a class id must be a positive integer"),
    ("image_class_labels.txt", 5, "4 4", True, "id 4 already given on line 4"),
    ("bounding_boxes.txt", 2, "2 10 8 wide 16", True, "expected numbers"),
    ("class_parents.txt", 12, "13 4", True, "class 13 is outside 1..12"),
    ("class_parents.txt", 12, "12 6", False, "parent 5 has no class"),
    ("classes.txt", 12, "13 x", False, "class 12 is missing"),
    ("class_parents.txt", 12, "", False, "no line for class 12"),
])
def test_inconsistent_tree_is_refused_naming_file_and_line(tmp_path, file, line_no, content, at_line, message):
    _write_cub_tree(tmp_path)
    path = tmp_path / file
    lines = path.read_text().splitlines()
    lines[line_no - 1] = content
    path.write_text("\n".join(lines) + "\n")
    cfg = DataConfig(dataset="cub", data_dir=str(tmp_path), class_parents=str(tmp_path / "class_parents.txt"))
    where = f"{path}:{line_no}: " if at_line else f"{path}: "
    with pytest.raises(DataError, match=f"^{where}.*{message}"):
        pipeline.describe(cfg)


# ------------------------------------------------------------------------------------ without boxes


def _write_plain_and_backgrounds(root, n=10, n_backgrounds=3):
    """Plain object images (red squares on green, in a nested folder, no annotations) and pure-blue
    object-free backgrounds of several sizes."""
    for i in range(n):
        image = np.zeros((48, 64, 3), np.uint8)
        image[..., 1] = 200
        image[10:30, 20:40, 0] = 255
        folder = root / "objects" / ("a" if i % 2 else "b")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    os.makedirs(root / "backgrounds", exist_ok=True)
    for i in range(n_backgrounds):
        image = np.zeros((40 + 20 * i, 90, 3), np.uint8)
        image[..., 2] = 255
        Image.fromarray(image).save(root / "backgrounds" / f"bg{i}.jpg" if i else root / "backgrounds" / "bg0.png")
    (root / "backgrounds" / "notes.txt").write_text("not an image")


def test_box_free_folder_trains_with_background_dir(tmp_path):
    _write_plain_and_backgrounds(tmp_path)
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path / "objects"), crop="full",
                     background_dir=str(tmp_path / "backgrounds"), background_patches_per_image=5)
    info = pipeline.describe(cfg)
    assert (info["has_labels"], info["has_masks"], info["n_child"]) == (False, False, None)
    # every image is an object image; the backgrounds are not part of the source
    assert info["n_images"]["object"] == info["n_images"]["all"] == 10
    assert info["n_background_patches"] == 3 * 5
    p = protocol.build_protocol(cfg)
    for i, (top, left, h, w) in p.patches:
        e = p.background_images[i]
        assert h == w >= min(e.height, e.width) / 4 and top + h <= e.height and left + w <= e.width
    x_c, x_bg = (next(iter(s)).numpy() for s in pipeline.train_streams(cfg, SIZE, 6, seed=0))
    assert (x_bg[..., 2] > 0.9).all() and (x_bg[..., 0] < -0.9).all()  # blue backgrounds only
    assert (x_c[..., 0] > 0.9).any() and (x_c[..., 2] < -0.9).all()  # whole object images, no blue


def test_box_free_folder_explains_what_it_needs(tmp_path):
    _write_plain_and_backgrounds(tmp_path)
    plain = DataConfig(dataset="folder", data_dir=str(tmp_path / "objects"), crop="full")
    with pytest.raises(DataError, match="no object boxes.*--background_dir"):
        pipeline.describe(plain)
    with pytest.raises(DataError, match="--crop=full"):
        pipeline.describe(DataConfig(dataset="folder", data_dir=str(tmp_path / "objects"),
                                     background_dir=str(tmp_path / "backgrounds")))
    with pytest.raises(DataError, match="--background_dir=.*missing is not a folder"):
        pipeline.describe(DataConfig(dataset="folder", data_dir=str(tmp_path / "objects"), crop="full",
                                     background_dir=str(tmp_path / "missing")))
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path / "objects"), crop="full",
                     background_dir=str(tmp_path / "backgrounds"))
    with pytest.raises(DataError, match="use 'object' or 'all'"):
        pipeline.eval_dataset(cfg, SIZE, 4, "background_images")


def test_box_free_evaluation_names_the_missing_labels_and_masks(tmp_path):
    from onegan_tf.evaluate import check_requirements
    from onegan_tf.metrics.registry import MetricError

    _write_plain_and_backgrounds(tmp_path)
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path / "objects"), crop="full",
                     background_dir=str(tmp_path / "backgrounds"))
    info = pipeline.describe(cfg)
    with pytest.raises(MetricError, match="clustering.*needs child/parent class labels"):
        check_requirements(["clustering"], info, 0)
    with pytest.raises(MetricError, match="segmentation.*needs ground-truth masks"):
        check_requirements(["segmentation"], info, 0)
    batch = next(iter(pipeline.eval_dataset(cfg, SIZE, 4, "object")))
    assert "mask" not in batch and (batch["child"].numpy() == -1).all()


def test_background_dir_also_replaces_the_patches_of_a_boxed_source(tmp_path):
    _write_plain_and_backgrounds(tmp_path)
    _write_cub_tree(tmp_path / "cub")
    cfg = DataConfig(dataset="cub", data_dir=str(tmp_path / "cub"), background_dir=str(tmp_path / "backgrounds"))
    info = pipeline.describe(cfg)
    assert info["n_images"]["object"] == info["n_images"]["all"] == 2 * N_CLASSES - 1
    x_bg = next(iter(pipeline.train_streams(cfg, SIZE, 4, seed=0)[1])).numpy()
    assert (x_bg[..., 2] > 0.9).all()


def test_training_refuses_a_final_eval_the_box_free_folder_cannot_serve(tmp_path):
    from onegan_tf.config import TrainConfig
    from onegan_tf.train import check_data

    _write_plain_and_backgrounds(tmp_path)
    data = DataConfig(dataset="folder", data_dir=str(tmp_path / "objects"), crop="full",
                      background_dir=str(tmp_path / "backgrounds"))
    model = ModelConfig(n_child=4, n_parent=2)
    check_data(Config(model=model, data=data, train=TrainConfig(final_eval="")))
    with pytest.raises(ConfigError, match="--final_eval=segmentation,clustering: .*needs ground-truth masks"):
        check_data(Config(model=model, data=data, train=TrainConfig(final_eval="segmentation,clustering")))
    with pytest.raises(ConfigError, match="--final_feature_net=inception_imagenet"):
        check_data(Config(model=model, data=data, train=TrainConfig(final_eval="fid")))


def test_mask_target_auto_is_refused_without_boxes(tmp_path):
    _write_plain_and_backgrounds(tmp_path)
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path / "objects"), crop="full",
                     background_dir=str(tmp_path / "backgrounds"))
    with pytest.raises(DataError, match="--mask_target=auto .* has none; give --mask_target a number"):
        protocol.object_fraction(protocol.build_protocol(cfg), "full")


def test_a_parent_file_for_another_source_is_refused():
    with pytest.raises(ConfigError, match="class_parents='p.txt' is read by dataset='cub' only"):
        DataConfig(dataset="folder", class_parents="p.txt")
