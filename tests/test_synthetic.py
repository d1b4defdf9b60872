"""The synthetic fine-grained set: exact, deterministic, varied, and not solvable by trivial baselines."""

import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image

from onegan_tf import baselines
from onegan_tf.data import synthetic
from onegan_tf.data.synthetic import SyntheticSpec, generate, generate_many, write_dataset

SPEC = SyntheticSpec()
SMALL = SyntheticSpec(n_parents=8, children_per_parent=6, resolution=64, seed=3)


@pytest.fixture(scope="module")
def sample():
    return generate_many(SPEC, range(48))


def test_same_spec_and_index_give_identical_arrays():
    a, b = generate(SPEC, 7), generate(SPEC, 7)
    for key in ("image", "mask", "soft_mask"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["bbox"] == b["bbox"] and a["child"] == b["child"]


def test_another_seed_or_index_gives_another_image():
    base = generate(SPEC, 7)["image"]
    assert not np.array_equal(base, generate(SyntheticSpec(seed=1), 7)["image"])
    assert not np.array_equal(base, generate(SPEC, 7 + SPEC.n_child)["image"])  # same child, new instance


def test_output_types_and_shapes(sample):
    ex = sample[0]
    assert ex["image"].shape == (128, 128, 3) and ex["image"].dtype == np.uint8
    assert ex["mask"].shape == (128, 128) and ex["mask"].dtype == np.uint8
    assert ex["soft_mask"].dtype == np.float32
    assert set(np.unique(ex["mask"])) <= {0, 255}
    small = generate(SMALL, 5)
    assert small["image"].shape == (64, 64, 3) and small["mask"].shape == (64, 64)


def test_children_are_balanced_and_belong_to_parent_child_div_children_per_parent(sample):
    assert SPEC.n_child == 12 and SMALL.n_child == 48
    for i, ex in enumerate(sample):
        assert ex["child"] == i % SPEC.n_child
        assert ex["parent"] == ex["child"] // SPEC.children_per_parent
    ex = generate(SMALL, 47 + SMALL.n_child)
    assert (ex["child"], ex["parent"]) == (47, 7)


def test_children_of_one_parent_differ_in_pattern_and_in_palette():
    for spec in (SPEC, SMALL):
        for p in range(spec.n_parents):
            looks = [spec.child_appearance(p * spec.children_per_parent + j)
                     for j in range(spec.children_per_parent)]
            assert len({family for family, _, _ in looks}) == 1
            assert len({pattern for _, pattern, _ in looks}) == len(looks)
            assert len({palette for _, _, palette in looks}) == len(looks)
    assert len({SMALL.child_appearance(c)[0] for c in range(SMALL.n_child)}) == 8  # one family per parent


def test_mask_is_the_thresholded_soft_coverage(sample):
    for ex in sample:
        np.testing.assert_array_equal(ex["mask"] == 255, ex["soft_mask"] >= 0.5)
        assert 0.0 <= ex["soft_mask"].min() and ex["soft_mask"].max() <= 1.0


def test_image_differs_from_the_background_alone_exactly_where_the_object_is():
    for i in range(12):
        ex = generate(SPEC, i)
        bg = synthetic.render_background(SPEC, i)
        differs = np.any(ex["image"] != bg, axis=-1)
        uncovered = ex["soft_mask"] == 0
        assert not differs[uncovered].any()
        assert differs[ex["mask"] == 255].mean() > 0.95


def test_bbox_is_tight_around_the_mask(sample):
    for ex in sample:
        x0, y0, x1, y1 = ex["bbox"]
        m = ex["mask"] > 0
        assert m[y0:y1, x0:x1].sum() == m.sum()
        assert m[y0, x0:x1].any() and m[y1 - 1, x0:x1].any()
        assert m[y0:y1, x0].any() and m[y0:y1, x1 - 1].any()


@pytest.mark.parametrize("spec", [SPEC, SMALL])
def test_mask_area_fraction_is_between_15_and_60_percent(spec):
    areas = np.array([(ex["mask"] > 0).mean() for ex in generate_many(spec, range(48))])
    assert areas.min() >= 0.15 and areas.max() <= 0.60
    assert areas.max() - areas.min() > 0.15  # scale varies


def test_objects_are_not_always_centred(sample):
    res = SPEC.resolution
    centres = []
    for ex in sample:
        ys, xs = np.nonzero(ex["mask"])
        centres.append((xs.mean(), ys.mean()))
    offsets = np.linalg.norm(np.array(centres) - res / 2, axis=1)
    assert np.mean(offsets > 0.1 * res) > 0.3
    assert np.array(centres).std(axis=0).min() > 0.06 * res


def test_outlines_of_one_child_differ_beyond_pose():
    # Same child, same pose and scale forced: the per-instance warp and part sizes still change the outline.
    a, b = synthetic._sample(SPEC, 0), synthetic._sample(SPEC, SPEC.n_child)
    pose = dict(angle=0.0, mirror=False, area=0.3, pos=(0.5, 0.5), aspect=1.0)
    a, b = dataclasses.replace(a, **pose), dataclasses.replace(b, **pose)
    ma = synthetic._coverage(a, 64, synthetic._layout(a, 64)) >= 0.5
    mb = synthetic._coverage(b, 64, synthetic._layout(b, 64)) >= 0.5
    assert (ma ^ mb).sum() / (ma | mb).sum() > 0.05


def test_trivial_baselines_do_not_solve_it():
    scores = baselines.synthetic_baselines(SPEC, n=200)
    assert scores["all_fg_iou"] < 0.4
    assert scores["centred_disc_iou"] < 0.55
    assert scores["border_colour_iou"] < 0.65
    assert scores["kmeans_child_nmi"] < 0.45
    assert scores["kmeans_parent_nmi"] < 0.2


def test_write_dataset_round_trip(tmp_path):
    out = tmp_path / "synth"
    spec = SyntheticSpec(resolution=64, seed=5)
    write_dataset(str(out), spec, n=4, start=10)
    with open(out / "annotations.json") as f:
        ann = json.load(f)
    with open(out / "spec.json") as f:
        meta = json.load(f)
    assert meta["resolution"] == 64 and meta["seed"] == 5 and meta["n"] == 4
    assert [a["file"] for a in ann] == [f"images/{i:06d}.png" for i in range(10, 14)]
    for i, a in zip(range(10, 14), ann):
        ex = generate(spec, i)
        np.testing.assert_array_equal(np.asarray(Image.open(out / a["file"])), ex["image"])
        np.testing.assert_array_equal(np.asarray(Image.open(out / a["mask"])), ex["mask"])
        assert tuple(a["bbox"]) == ex["bbox"]
        assert (a["child"], a["parent"]) == (ex["child"], ex["parent"])


def test_write_dataset_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(str(tmp_path), SyntheticSpec(resolution=32), n=1)
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_spec_rejects_out_of_range_values():
    with pytest.raises(ValueError, match="n_parents"):
        SyntheticSpec(n_parents=len(synthetic.FAMILIES) + 1)
    with pytest.raises(ValueError, match="children_per_parent"):
        SyntheticSpec(children_per_parent=0)
    with pytest.raises(ValueError, match="resolution"):
        SyntheticSpec(resolution=8)


def test_other_families_sizes_and_backgrounds_give_another_set():
    """The spec's families, area range and backgrounds are what a parent draws; the defaults are the demo's."""
    other = SyntheticSpec(resolution=64, seed=5, families=("leaf", "mushroom", "crescent", "tree"),
                          area_range=(0.08, 0.40), backgrounds=("blotches", "horizon"))
    assert [other.child_appearance(c)[0] for c in range(0, other.n_child, 3)] == list(other.families)
    areas = np.array([(ex["mask"] > 0).mean() for ex in generate_many(other, range(48))])
    assert areas.min() >= 0.08 and areas.max() <= 0.40 and areas.mean() < 0.3
    assert {synthetic._sample(other, i).background for i in range(48)} <= {"blotches", "horizon"}
    assert SyntheticSpec().families == synthetic.FAMILIES and SyntheticSpec().area_range == synthetic.AREA_RANGE
    with pytest.raises(ValueError, match="families must be distinct names"):
        SyntheticSpec(families=("bird", "dragon"))
    with pytest.raises(ValueError, match="area_range"):
        SyntheticSpec(area_range=(0.3, 0.35))


def test_the_held_out_set_is_jpeg_files_of_several_sizes_read_by_the_folder_source(tmp_path, monkeypatch):
    from onegan_tf.config import DataConfig
    from onegan_tf.data import heldout
    from onegan_tf.data.sources import load_source

    monkeypatch.setattr(heldout, "GRAYSCALE_EVERY", 5)
    out = tmp_path / "heldout"
    assert heldout.main(["heldout", f"--out_dir={out}", "--n=20"]) == 0
    images = sorted((out / "images").iterdir())
    assert len(images) == 20 and all(p.suffix == ".jpg" for p in images)
    opened = [Image.open(p) for p in images]
    assert len({im.size for im in opened}) > 1 and sum(im.mode == "L" for im in opened) == 4
    source = load_source(DataConfig(dataset="folder", data_dir=str(out)))
    assert (source.n_child, source.n_parent, source.has_masks, len(source.examples)) == (12, 4, True, 20)
    with pytest.raises(FileExistsError, match="not an empty folder"):
        heldout.write(str(out), 10)
    assert len(os.listdir(out / "images")) == 20


def test_cli_writes_a_dataset(tmp_path, capsys):
    assert synthetic.main(["synthetic", "--write", str(tmp_path / "d"), "--n", "2", "--resolution", "32"]) == 0
    assert sorted(os.listdir(tmp_path / "d" / "images")) == ["000000.png", "000001.png"]
