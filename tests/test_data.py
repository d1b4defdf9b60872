"""Data protocol and pipelines (SPEC §6, issue 3): sources, split, crops, patches, determinism, bad input."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.testing import mocking

from onegan_tf.config import DataConfig
from onegan_tf.data import pipeline, protocol, synthetic
from onegan_tf.data.sources import DataError, Example

SIZE = 32


# --------------------------------------------------------------------------------------------- helpers


def _example(key, h=60, w=80, bbox=(20, 10, 50, 40)):
    return Example(key=key, image=b"", height=h, width=w, bbox=bbox)


def _object_image(h, w, bbox, colour=(255, 0, 0)):
    """An L-shaped red object on a green-noise background: the mask is exactly the red channel. The shape
    is asymmetric so a flip applied to the image but not the mask shows."""
    x0, y0, x1, y1 = bbox
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 1] = np.random.default_rng([h, w, *bbox]).integers(0, 256, (h, w))
    mask = np.zeros((h, w), np.uint8)
    xm = (x0 + x1) // 2
    image[y0:y1, x0:xm] = colour
    image[y0:(y0 + y1) // 2, xm:x1] = colour  # an L shape: asymmetric left/right and top/bottom
    mask[image[..., 0] > 0] = 255
    return image, mask


def _write_folder(root, n=10, h=48, w=64, seed=0, masks=True):
    rng = np.random.default_rng(seed)
    os.makedirs(root / "images", exist_ok=True)
    os.makedirs(root / "masks", exist_ok=True)
    annotations = []
    for i in range(n):
        bw, bh = int(rng.integers(8, 20)), int(rng.integers(8, 20))
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        bbox = (x0, y0, x0 + bw, y0 + bh)
        image, mask = _object_image(h, w, bbox)
        Image.fromarray(image).save(root / "images" / f"{i:03d}.png")
        entry = {"file": f"images/{i:03d}.png", "bbox": list(bbox), "child": i % 4, "parent": (i % 4) // 2}
        if masks:
            Image.fromarray(mask).save(root / "masks" / f"{i:03d}.png")
            entry["mask"] = f"masks/{i:03d}.png"
        annotations.append(entry)
    (root / "annotations.json").write_text(json.dumps(annotations))
    return annotations


def _take(ds, n):
    return [x.numpy() for x in ds.take(n)]


# ------------------------------------------------------------------------------------------- protocol


def test_split_is_seeded_disjoint_and_80_20():
    examples = tuple(_example(f"{i:03d}") for i in range(50))
    obj, bg = protocol.split_object_background(examples, seed=3)
    keys_obj, keys_bg = {e.key for e in obj}, {e.key for e in bg}
    assert not keys_obj & keys_bg
    assert keys_obj | keys_bg == {e.key for e in examples}
    assert (len(obj), len(bg)) == (40, 10)
    assert protocol.split_object_background(examples[::-1], seed=3) == (obj, bg)  # order-independent
    assert protocol.split_object_background(examples, seed=4)[1] != bg


def test_background_patches_never_intersect_their_box():
    rng = np.random.default_rng(0)
    n_found = 0
    for _ in range(500):
        h, w = int(rng.integers(20, 200)), int(rng.integers(20, 200))
        x0, y0 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
        x1, y1 = int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))
        patches = protocol.background_patches(h, w, (x0, y0, x1, y1), 4, rng)
        n_found += bool(patches)
        for top, left, ph, pw in patches:
            assert ph == pw >= np.ceil(min(h, w) / 4)
            assert 0 <= top and top + ph <= h and 0 <= left and left + pw <= w
            disjoint = left + pw <= x0 or left >= x1 or top + ph <= y0 or top >= y1
            assert disjoint, (h, w, (x0, y0, x1, y1), (top, left, ph, pw))
    assert n_found > 100
    assert protocol.background_patches(100, 100, (10, 10, 90, 90), 4, rng) == []


def test_background_patches_take_the_largest_square_first():
    patches = protocol.background_patches(100, 200, (0, 0, 50, 100), 1, np.random.default_rng(0))
    assert patches == [(0, patches[0][1], 100, 100)] and patches[0][1] >= 50


def test_object_crop_is_finegan_square_clipped_to_image():
    e = _example("a", h=100, w=200, bbox=(90, 40, 110, 60))  # 20×20 box centred at (100, 50)
    assert protocol.object_crop(e, "bbox") == (35, 85, 30, 30)  # 1.5 × 20 = 30
    e = _example("b", h=100, w=200, bbox=(0, 0, 40, 20))  # clipped at the top-left corner
    assert protocol.object_crop(e, "bbox") == (0, 0, 40, 50)
    assert protocol.object_crop(e, "full") == (0, 0, 100, 200)


def test_auto_mask_target_is_half_of_each_box_as_a_fraction_of_its_crop():
    """--mask_target=auto: BOX_FILL of the box over the crop's area, averaged over X_c (never the masks)."""
    a = _example("a", h=100, w=200, bbox=(90, 40, 110, 60))  # 20x20 box in a 30x30 crop
    b = _example("b", h=100, w=200, bbox=(0, 0, 40, 20))  # 40x20 box in a 40x50 crop (clipped)
    p = protocol.Protocol(source=None, object=(a, b), background_images=(), patches=(), no_patch=())
    assert protocol.BOX_FILL == 0.5
    assert protocol.object_fraction(p, "bbox") == pytest.approx(0.5 * (400 / 900 + 800 / 2000) / 2)
    assert protocol.object_fraction(p, "full") == pytest.approx(0.5 * (400 + 800) / 20000 / 2)
    empty = dataclasses.replace(p, object=(), source=types.SimpleNamespace(name="folder"))
    with pytest.raises(DataError, match="give --mask_target a number"):
        protocol.object_fraction(empty, "bbox")


def test_mask_target_is_a_fraction_or_auto():
    from onegan_tf.config import ConfigError, TrainConfig

    assert TrainConfig(mask_target="0.3").mask_fraction == 0.3
    assert TrainConfig(mask_target=0.3).mask_target == "0.3"  # a config.json from before `auto`
    assert TrainConfig(mask_target="auto:0.297").mask_fraction == 0.297
    with pytest.raises(ConfigError, match="mask_target=auto has not been estimated yet"):
        TrainConfig(mask_target="auto").mask_fraction
    for bad in ("1.5", "0", "half", "auto:2"):
        with pytest.raises(ConfigError, match=f"mask_target='{bad}' must be a fraction in \\(0, 1\\) or auto"):
            TrainConfig(mask_target=bad)


# --------------------------------------------------------------------------------------- folder source


def test_crop_flip_and_resize_keep_masks_aligned(tmp_path):
    _write_folder(tmp_path, n=12)
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path))
    for ds in (pipeline.eval_dataset(cfg, SIZE, 4, "all"), pipeline.train_pairs(cfg, SIZE, 4, seed=1, split="all")):
        flips = []
        for batch in ds:
            red = (batch["image"][..., 0].numpy() + 1) / 2  # red channel == mask before crop and resize
            np.testing.assert_allclose(red, batch["mask"][..., 0].numpy(), atol=2 / 255)
            flips += list(batch["flip"].numpy()) if "flip" in batch else []
    assert 0 < sum(flips) < len(flips)  # train_pairs did flip some and not others


def test_flip_moves_the_mask_with_the_image(tmp_path):
    _write_folder(tmp_path, n=12)
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path))
    plain = next(iter(pipeline.eval_dataset(cfg, SIZE, 12, "all")))
    aug = next(iter(pipeline.train_pairs(cfg, SIZE, 12, seed=1, split="all")))
    for i, flip in enumerate(aug["flip"].numpy()):
        expect = plain["mask"][i].numpy()[:, ::-1] if flip else plain["mask"][i].numpy()
        np.testing.assert_allclose(aug["mask"][i].numpy(), expect, atol=1e-6)
        assert flip or np.array_equal(aug["image"][i], plain["image"][i])


def test_grayscale_cmyk_and_corrupt_files(tmp_path, caplog):
    _write_folder(tmp_path, n=8, masks=False)
    annotations = json.loads((tmp_path / "annotations.json").read_text())
    red = np.zeros((48, 64, 3), np.uint8)
    red[...] = (255, 0, 0)
    Image.fromarray(red).convert("CMYK").save(tmp_path / "images" / "cmyk.jpg", "JPEG")
    Image.fromarray(np.full((48, 64), 200, np.uint8)).save(tmp_path / "images" / "gray.jpg", "JPEG")
    buf = io.BytesIO()
    Image.fromarray(red).save(buf, "JPEG")
    (tmp_path / "images" / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "images" / "garbage.png").write_bytes(b"not an image at all")
    for name in ("cmyk.jpg", "gray.jpg", "truncated.jpg", "garbage.png"):
        annotations.append({"file": f"images/{name}", "bbox": [10, 10, 30, 30], "child": 0})
    (tmp_path / "annotations.json").write_text(json.dumps(annotations))
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path))
    with caplog.at_level("WARNING"):
        info = pipeline.describe(cfg)
    assert info["n_corrupt"] == 2
    assert sorted(os.path.basename(f) for f in info["corrupt_files"]) == ["garbage.png", "truncated.jpg"]
    assert "truncated.jpg" in caplog.text and "garbage.png" in caplog.text
    assert info["n_images"]["all"] == 10
    images = {}
    for split in ("object", "background_images"):
        examples = pipeline.build_protocol(cfg).examples(split)
        for e, x in zip(examples, pipeline.eval_dataset(cfg, SIZE, 1, split)):
            images[os.path.basename(e.key)] = x["image"][0].numpy()
    assert images["gray.jpg"].shape == (SIZE, SIZE, 3)
    np.testing.assert_allclose(images["gray.jpg"], 200 / 127.5 - 1, atol=0.05)
    np.testing.assert_allclose(images["cmyk.jpg"].mean(axis=(0, 1)), [1, -1, -1], atol=0.1)


def test_empty_split_is_an_error(tmp_path):
    _write_folder(tmp_path, n=1)
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="empty"):
        pipeline.train_streams(cfg, SIZE, 2, seed=0)
    with pytest.raises(DataError, match="test"):
        pipeline.eval_dataset(cfg, SIZE, 2, "test")


def test_mask_dir_matches_masks_by_file_stem(tmp_path):
    _write_folder(tmp_path / "set", n=6, masks=True)
    annotations = json.loads((tmp_path / "set" / "annotations.json").read_text())
    for a in annotations:
        del a["mask"]
    (tmp_path / "set" / "annotations.json").write_text(json.dumps(annotations))
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path / "set"))
    assert "mask" not in next(iter(pipeline.eval_dataset(cfg, SIZE, 2, "all")))
    cfg = dataclasses.replace(cfg, mask_dir=str(tmp_path / "set" / "masks"))
    batch = next(iter(pipeline.eval_dataset(cfg, SIZE, 6, "all")))
    np.testing.assert_allclose((batch["image"][..., 0].numpy() + 1) / 2, batch["mask"][..., 0].numpy(),
                               atol=2 / 255)
    os.remove(tmp_path / "set" / "masks" / "003.png")
    with pytest.raises(DataError, match="003"):
        pipeline.describe(dataclasses.replace(cfg, split_seed=1))


# ---------------------------------------------------------------------------------------- determinism


def test_streams_are_deterministic_and_resume_at_start_step(tmp_path):
    _write_folder(tmp_path, n=15)
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path))
    for stream in (0, 1):
        full = _take(pipeline.train_streams(cfg, SIZE, 4, seed=7)[stream], 6)  # 6·4 > 12 object images
        again = _take(pipeline.train_streams(cfg, SIZE, 4, seed=7)[stream], 6)
        tail = _take(pipeline.train_streams(cfg, SIZE, 4, seed=7, start_step=4)[stream], 2)
        other = _take(pipeline.train_streams(cfg, SIZE, 4, seed=8)[stream], 6)
        assert all(np.array_equal(a, b) for a, b in zip(full, again))
        assert all(np.array_equal(a, b) for a, b in zip(full[4:], tail))
        assert not all(np.array_equal(a, b) for a, b in zip(full, other))
        assert full[0].shape == (4, SIZE, SIZE, 3) and full[0].dtype == np.float32
        assert full[0].min() >= -1 and full[0].max() <= 1


def test_each_epoch_visits_every_object_image_once(tmp_path):
    _write_folder(tmp_path, n=10)  # 8 object images
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path))
    reference = [np.abs(x).sum().round(1) for x in next(iter(pipeline.eval_dataset(cfg, SIZE, 8)))["image"].numpy()]
    batches = _take(pipeline.train_streams(cfg, SIZE, 4, seed=0)[0], 2)
    # a flip does not change the sum of absolute values: identify images by it
    drawn = [np.abs(x).sum().round(1) for b in batches for x in b]
    assert sorted(drawn) == sorted(reference)


def test_data_cache_changes_nothing_but_speed(tmp_path):
    _write_folder(tmp_path, n=10)
    cfg = DataConfig(dataset="folder", data_dir=str(tmp_path))
    cached = dataclasses.replace(cfg, data_cache=True)
    for a, b in zip(pipeline.train_streams(cfg, SIZE, 4, seed=2), pipeline.train_streams(cached, SIZE, 4, seed=2)):
        assert all(np.array_equal(x, y) for x, y in zip(_take(a, 3), _take(b, 3)))


# ----------------------------------------------------------------------------------------------- CUB


def _write_cub(root, segmentations_inside=False, n=10):
    release = root / "CUB_200_2011"
    seg_root = (release if segmentations_inside else root) / "segmentations"
    lines = {"images.txt": [], "image_class_labels.txt": [], "bounding_boxes.txt": [], "classes.txt": [],
             "train_test_split.txt": []}
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        cls = [1, 15, 200][i % 3]
        folder = f"{cls:03d}.Bird_{cls}"
        rel = f"{folder}/Bird_{cls}_{i:04d}.jpg"
        h, w = 60, 90
        bbox = (int(rng.integers(0, 40)), int(rng.integers(0, 20)))
        bbox = (*bbox, bbox[0] + 30, bbox[1] + 25)
        image, mask = _object_image(h, w, bbox)
        os.makedirs(release / "images" / folder, exist_ok=True)
        os.makedirs(seg_root / folder, exist_ok=True)
        Image.fromarray(image).save(release / "images" / rel, quality=100)
        Image.fromarray(mask).save(seg_root / rel.replace(".jpg", ".png"))
        lines["images.txt"].append(f"{i} {rel}")
        lines["image_class_labels.txt"].append(f"{i} {cls}")
        lines["bounding_boxes.txt"].append(f"{i} {bbox[0]}.0 {bbox[1]}.0 30.0 25.0")
        lines["train_test_split.txt"].append(f"{i} {i % 2}")
    lines["classes.txt"] = [f"{c} {c:03d}.Bird_{c}" for c in range(1, 201)]
    for name, rows in lines.items():
        (release / name).write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("segmentations_inside", [False, True])
def test_cub_release_tree(tmp_path, segmentations_inside):
    _write_cub(tmp_path, segmentations_inside)
    cfg = DataConfig(dataset="cub", data_dir=str(tmp_path))
    info = pipeline.describe(cfg)
    # 200 classes from classes.txt; no parent file, so the parents are the model's contiguous blocks
    assert (info["n_child"], info["n_parent"], info["has_masks"]) == (200, None, True)
    assert info["n_images"] == {"object": 8, "background_images": 2, "all": 10, "test": 0}
    children, parents = [], []
    for batch in pipeline.eval_dataset(cfg, SIZE, 4, "all", classes=(200, 20)):
        children += list(batch["child"].numpy())
        parents += list(batch["parent"].numpy())
        red = (batch["image"][..., 0].numpy() + 1) / 2
        # JPEG bleeds the green noise into red: compare the binarised shapes
        assert ((red > 0.5) == (batch["mask"][..., 0].numpy() > 0.5)).mean() > 0.97
    assert set(children) == {0, 14, 199}
    assert parents == [c // 10 for c in children]
    x_c, x_bg = pipeline.train_streams(cfg, SIZE, 3, seed=0)
    assert next(iter(x_c)).shape == (3, SIZE, SIZE, 3) and next(iter(x_bg)).shape == (3, SIZE, SIZE, 3)


@pytest.mark.parametrize("missing", ["bounding_boxes.txt", "image_class_labels.txt", "images.txt", "images"])
def test_cub_missing_annotation_names_the_path(tmp_path, missing):
    _write_cub(tmp_path, n=3)
    path = tmp_path / "CUB_200_2011" / missing
    if path.is_dir():
        import shutil
        shutil.rmtree(path)
    else:
        path.unlink()
    with pytest.raises(DataError, match=str(path).replace("\\", "/") + ": expected"):
        pipeline.describe(DataConfig(dataset="cub", data_dir=str(tmp_path)))


def test_cub_missing_mask_of_one_image_names_it(tmp_path):
    _write_cub(tmp_path, n=3)
    victim = next((tmp_path / "segmentations").rglob("*.png"))
    victim.unlink()
    with pytest.raises(DataError, match=victim.name):
        pipeline.describe(DataConfig(dataset="cub", data_dir=str(tmp_path)))


# ----------------------------------------------------------------------------------------------- TFDS


def _encode(array, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt)
    return buf.getvalue()


def _fake_tfds(n, objects=False, with_mask=True):
    rows = []
    for i in range(n):
        h, w = 40 + i, 60
        bbox = (5 + i % 7, 8, 30 + i % 5, 40)  # pixels (x0, y0, x1, y1)
        image, mask = _object_image(h, w, bbox)
        norm = np.array([bbox[1] / h, bbox[0] / w, bbox[3] / h, bbox[2] / w], np.float32)
        row = {"image": _encode(image), "label": np.int64(i % 5), "image/filename": f"img_{i:03d}.png"}
        if objects:
            row["objects"] = {"bbox": np.stack([norm * 0.5, norm])}  # the second (larger) box is the object
        else:
            row["bbox"] = norm
        if with_mask:
            row["segmentation_mask"] = _encode(mask[..., None].repeat(1, -1)[..., 0])
        rows.append(row)

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **kwargs):
        chosen = rows[: n // 2] if split == "train" else rows[n // 2:]
        return tf.data.Dataset.from_generator(lambda: iter(chosen), output_signature={
            k: tf.TensorSpec([], tf.string) if isinstance(v, (bytes, str)) else
            ({"bbox": tf.TensorSpec([None, 4], tf.float32)} if k == "objects" else
             tf.TensorSpec(np.shape(v), tf.as_dtype(np.asarray(v).dtype))) for k, v in rows[0].items()})

    return tfds.testing.mock_data(as_dataset_fn=as_dataset)


def test_tfds_caltech_birds2011_on_mock_data(tmp_path):
    with _fake_tfds(10):
        cfg = DataConfig(dataset="caltech_birds2011", data_dir=str(tmp_path))
        info = pipeline.describe(cfg)
        assert (info["n_child"], info["n_parent"], info["has_masks"]) == (200, 20, True)
        assert info["n_images"]["all"] == 10
        for batch in pipeline.eval_dataset(cfg, SIZE, 5, "all"):
            red = (batch["image"][..., 0].numpy() + 1) / 2
            np.testing.assert_allclose(red, batch["mask"][..., 0].numpy(), atol=2 / 255)
            assert list(batch["parent"].numpy()) == [c // 10 for c in batch["child"].numpy()]
        assert next(iter(pipeline.train_streams(cfg, SIZE, 2, seed=0)[1])).shape == (2, SIZE, SIZE, 3)


def test_tfds_stanford_dogs_takes_the_largest_object_box(tmp_path):
    with _fake_tfds(6, objects=True, with_mask=False):
        cfg = DataConfig(dataset="stanford_dogs", data_dir=str(tmp_path))
        src = pipeline.build_protocol(cfg).source
        assert (src.n_child, src.n_parent, src.has_masks) == (120, 12, False)
        e = next(e for e in src.examples if e.key == "train/img_001.png")
        assert e.bbox == (6, 8, 31, 40)


@pytest.fixture
def ordered_mock_boxes(monkeypatch):
    """`tfds.testing.mock_data` fills a BBoxFeature with four independent uniform numbers, which TFDS' own
    encoder then refuses (ymin > ymax) whenever `as_dataset` is given decoders, as the loader gives them to
    keep the encoded image bytes. Ordering each box's corners keeps everything else of the default generator."""
    real = mocking.RandomFakeGenerator._generate_random_obj

    def generate(self, feature, tensor_info, rng):
        value = real(self, feature, tensor_info, rng)
        if isinstance(feature, tfds.features.BBoxFeature):
            lo, hi = value[..., :2], value[..., 2:]
            value = np.concatenate([np.minimum(lo, hi), np.maximum(lo, hi)], -1)
        return value

    monkeypatch.setattr(mocking.RandomFakeGenerator, "_generate_random_obj", generate)


@pytest.mark.parametrize("name, classes, has_masks", [("caltech_birds2011", (200, 20), True),
                                                      ("stanford_dogs", (120, 12), False),
                                                      ("cars196", (196, 14), False)])
def test_tfds_builders_read_mock_data_of_their_own_feature_specs(tmp_path, ordered_mock_boxes, name, classes,
                                                                  has_masks):
    """mock_data's default policy, offline: with no metadata files it generates examples from each real
    builder's features (image sizes, labels, boxes; Birds' segmentation masks, Dogs' list of object boxes).
    Every example keeps its size, label, parent and box (Dogs: the largest); the pipelines batch them."""
    n = 5
    with tfds.testing.mock_data(num_examples=n):
        builder = tfds.builder(name, data_dir=str(tmp_path))
        raw = {split: list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
               for split in ("train", "test")}
        cfg = DataConfig(dataset=name, data_dir=str(tmp_path))
        src = pipeline.build_protocol(cfg).source
        assert (src.n_child, src.n_parent) == classes and src.has_masks is has_masks
        assert len(src.examples) == 2 * n and not src.corrupt
        examples = {e.key: e for e in src.examples}
        for split in ("train", "test"):
            for ex in raw[split]:
                e = examples.pop(f"{split}/{ex.get('image/filename', ex.get('id')).decode()}")
                h, w = ex["image"].shape[:2]
                box = ex["bbox"] if "bbox" in ex else max(ex["objects"]["bbox"],
                                                          key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
                ymin, xmin, ymax, xmax = box
                assert (e.height, e.width) == (h, w)
                assert (e.child, e.parent) == (ex["label"], ex["label"] // (classes[0] // classes[1]))
                assert e.bbox == (int(np.floor(xmin * w + 1e-3)), int(np.floor(ymin * h + 1e-3)),
                                  max(int(np.ceil(xmax * w - 1e-3)), int(np.floor(xmin * w + 1e-3)) + 1),
                                  max(int(np.ceil(ymax * h - 1e-3)), int(np.floor(ymin * h + 1e-3)) + 1))
                assert (e.mask is not None) is has_masks
        batch = next(iter(pipeline.eval_dataset(cfg, SIZE, 4, "all")))
        assert batch["image"].shape == (4, SIZE, SIZE, 3) and ("mask" in batch) is has_masks
        assert list(batch["parent"].numpy()) == [c // (classes[0] // classes[1]) for c in batch["child"].numpy()]
        assert next(iter(pipeline.train_streams(cfg, SIZE, 2, seed=0)[1])).shape == (2, SIZE, SIZE, 3)


# ------------------------------------------------------------------------------------------ synthetic


def test_synthetic_source_end_to_end():
    cfg = DataConfig(dataset="synthetic", synthetic_train_size=10, synthetic_test_size=4,
                     synthetic_resolution=SIZE, crop="full")
    spec = synthetic.SyntheticSpec(resolution=SIZE)
    info = pipeline.describe(cfg)
    assert info["n_images"] == {"object": 8, "background_images": 2, "all": 10, "test": 4}
    assert (info["n_child"], info["n_parent"]) == (spec.n_child, spec.n_parents)
    batch = next(iter(pipeline.eval_dataset(cfg, SIZE, 4, "test")))
    for j, i in enumerate(range(10, 14)):  # the test split is indices [train_size, train_size + test_size)
        truth = synthetic.generate(spec, i)
        np.testing.assert_allclose((batch["image"][j].numpy() + 1) * 127.5, truth["image"], atol=1e-3)
        np.testing.assert_allclose(batch["mask"][j, ..., 0].numpy(), truth["mask"] / 255, atol=1e-6)
        assert (batch["child"][j], batch["parent"][j]) == (truth["child"], truth["parent"])
    bbox_cfg = dataclasses.replace(cfg, crop="bbox")
    obj = pipeline.build_protocol(bbox_cfg).object
    for e, x in zip(obj, pipeline.eval_dataset(bbox_cfg, SIZE, 1)):
        truth = synthetic.generate(spec, int(e.key.split("/")[1]))
        assert e.bbox == tuple(truth["bbox"]) and int(x["child"][0]) == truth["child"]
        assert x["mask"].numpy().mean() > 0.1  # the crop is centred on the object


def test_cub_without_segmentations_trains_but_has_no_masks(tmp_path):
    import shutil

    _write_cub(tmp_path, n=5)
    shutil.rmtree(tmp_path / "segmentations")
    cfg = DataConfig(dataset="cub", data_dir=str(tmp_path))
    assert pipeline.describe(cfg)["has_masks"] is False
    assert "mask" not in next(iter(pipeline.eval_dataset(cfg, SIZE, 2)))


def test_unknown_dataset_or_crop_names_the_allowed_values():
    from onegan_tf.config import ConfigError

    with pytest.raises(ConfigError, match="cub"):
        DataConfig(dataset="imagenet")
    with pytest.raises(ConfigError, match="bbox"):
        DataConfig(crop="center")


def test_large_synthetic_sets_are_read_from_files(tmp_path, monkeypatch):
    from onegan_tf.data import sources

    monkeypatch.setattr(sources, "_MAX_IN_MEMORY_BYTES", 0)
    cfg = DataConfig(dataset="synthetic", data_dir=str(tmp_path), synthetic_train_size=5,
                     synthetic_test_size=2, synthetic_resolution=SIZE)
    src = pipeline.build_protocol(cfg).source
    assert all(isinstance(e.image, str) and os.path.exists(e.image) for e in src.examples + src.test_examples)
    batch = next(iter(pipeline.eval_dataset(cfg, SIZE, 2, "test")))
    assert batch["image"].shape == (2, SIZE, SIZE, 3) and batch["mask"].shape == (2, SIZE, SIZE, 1)
