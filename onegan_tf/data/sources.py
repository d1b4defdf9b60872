"""Image sources: where the images, boxes, labels and masks come from (SPEC §6, issue 3).

A source turns one on-disk (or generated) dataset into a `Source`: a flat, key-sorted list of validated
`Example`s plus what is known about the classes. Every image is opened once here (PIL, in a thread pool):
its size is read, it is decoded to prove it is readable, and files that fail are dropped, counted and named
in the log (`Source.corrupt`) — the run goes on. Images the TensorFlow decoders cannot read reliably (TIFF,
16-bit PNGs, ...) are converted once to RGB PNG bytes in memory, so the tf.data pipeline only ever sees
JPEG/PNG that `tf.io.decode_image(channels=3)` turns into RGB (grayscale and CMYK included).

Sources (`DataConfig.dataset`):
  cub                  CUB-200-2011 release layout under `data_dir`, any number of classes (see data/README.md).
  caltech_birds2011,   TFDS builders; images are extracted once to files next to the TFDS data
  stanford_dogs,       (`<tfds data_dir>/onegan_tf_files/<name>/`) so the pipeline reads files by index.
  cars196
  folder               `images/`, optional `masks/`, `annotations.json` — the layout `synthetic.write_dataset`
                       writes; the generic way to bring your own data. Without `annotations.json`: a plain
                       tree of images, no boxes, labels or masks (train it with `--background_dir`).
  synthetic            `onegan_tf.data.synthetic`, generated on the fly (optionally cached to `data_dir`).
`DataConfig.mask_dir` adds ground-truth masks (one PNG per image, matched by file stem) to folder and TFDS
sources — how the DeepLabV3 masks the paper used for Dogs and Cars are given. `load_backgrounds` reads
`DataConfig.background_dir`, a tree of object-free images that replaces the patches cut beside the boxes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import tempfile
from typing import Any, Iterable

import numpy as np
from absl import logging
from PIL import Image

from onegan_tf.config import DATA_SOURCES, DATASET_CLASSES, DataConfig

# TFDS builder name -> the paper's dataset (class counts, SPEC §1).
TFDS_DATASETS = {"caltech_birds2011": "birds", "stanford_dogs": "dogs", "cars196": "cars"}
SOURCES = DATA_SOURCES

# What tf.io.decode_image(channels=3) reads correctly; anything else is re-encoded to PNG once.
_TF_FORMATS = {"JPEG", "PNG"}
_TF_MODES = {"RGB", "L", "CMYK", "RGBA", "LA", "P"}
# Encoded images kept in memory end up as constants in the tf.data graph (2 GB limit); above this many raw
# bytes a generated set is written to PNG files instead.
_MAX_IN_MEMORY_BYTES = 512 * 2**20
# File name endings of the plain image trees (folder without annotations.json, background_dir).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class DataError(ValueError):
    """The data on disk does not match what the source expects; the message names the path and the fix."""


@dataclasses.dataclass(frozen=True)
class Example:
    """One validated image. `image`/`mask` are a file path (str) or encoded PNG/JPEG bytes.

    `bbox` is the object box in pixels, (x0, y0, x1, y1) with exclusive end, inside the image.
    `child`/`parent` are -1 where unknown.
    """

    key: str
    image: str | bytes
    height: int
    width: int
    bbox: tuple[int, int, int, int]
    child: int = -1
    parent: int = -1
    mask: str | bytes | None = None


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    n_child: int | None
    n_parent: int | None
    has_masks: bool
    has_labels: bool
    examples: tuple[Example, ...]
    # Held-out evaluation examples (synthetic only); never part of the 80/20 protocol.
    test_examples: tuple[Example, ...] = ()
    # Files that could not be read: (file, reason).
    corrupt: tuple[tuple[str, str], ...] = ()
    # False when the source has no object boxes (a plain image folder): each Example.bbox is the whole
    # image, so neither the bbox crop nor the patches beside the box exist.
    has_boxes: bool = True


@dataclasses.dataclass
class _Raw:
    """An example before validation. bbox is either pixels (x0, y0, x1, y1) or, with bbox_normalized_yx,
    TFDS' normalised (ymin, xmin, ymax, xmax)."""

    key: str
    image: str | bytes | np.ndarray
    bbox: Any  # None: no box, the whole image
    child: int = -1
    parent: int = -1
    mask: str | bytes | np.ndarray | None = None
    bbox_normalized_yx: bool = False


def parent_of(child: int, n_child: int | None, n_parent: int | None) -> int:
    """p = c // (N_C // N_P) (SPEC §1); -1 when the hierarchy is unknown."""
    if child < 0 or not n_child or not n_parent:
        return -1
    return child // (n_child // n_parent)


# --------------------------------------------------------------------------------------------------- load


def load_source(cfg: DataConfig) -> Source:
    """The source `cfg.dataset` names, indexed and validated (memoised per DataConfig)."""
    return _load_source_cached(cfg)


@functools.lru_cache(maxsize=8)
def _load_source_cached(cfg: DataConfig) -> Source:
    loaders = {"cub": _load_cub, "folder": _load_folder, "synthetic": _load_synthetic}
    if cfg.dataset in TFDS_DATASETS:
        return _load_tfds(cfg)
    if cfg.dataset not in loaders:
        raise DataError(f"--dataset={cfg.dataset!r} is not a known source; allowed values: {SOURCES}")
    return loaders[cfg.dataset](cfg)


def _require(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise DataError(f"missing {path}: expected {what} (see data/README.md for the layouts each "
                        f"--dataset expects)")
    return path


def _read_table(path: str, what: str, n_fields: int) -> dict[str, tuple[int, list[str]]]:
    """The lines of a whitespace-separated CUB table by their first field: id -> (line number, other fields)."""
    rows = {}
    with open(_require(path, what)) as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < n_fields:
                raise DataError(f"{path}:{line_no}: expected {what}, got {line.strip()!r}")
            if parts[0] in rows:
                raise DataError(f"{path}:{line_no}: id {parts[0]} already given on line {rows[parts[0]][0]}")
            rows[parts[0]] = (line_no, parts[1:])
    return rows


def _positive_int(path: str, line_no: int, value: str, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise DataError(f"{path}:{line_no}: {what} must be a positive integer, got {value!r}")
    return number


def _cub_classes(root: str, labels: dict[str, tuple[int, list[str]]]) -> int:
    """N_C of a CUB-format tree: the classes of classes.txt (ids 1..N_C, each once), or without that file
    the largest class id of image_class_labels.txt. A label outside 1..N_C is refused with its line."""
    labels_path = os.path.join(root, "image_class_labels.txt")
    classes_path = os.path.join(root, "classes.txt")
    if os.path.exists(classes_path):
        rows = _read_table(classes_path, "lines '<class_id> <class name>'", 2)
        ids = sorted(_positive_int(classes_path, n, k, "a class id") for k, (n, _) in rows.items())
        if ids != list(range(1, len(ids) + 1)):
            gap = next(i for i, c in enumerate(ids, 1) if c != i)
            raise DataError(f"{classes_path}: class ids must be 1..{len(ids)} (one line each); class {gap} "
                            f"is missing")
        n_child = len(ids)
    else:
        n_child = max((_positive_int(labels_path, n, v[0], "a class id") for n, v in labels.values()), default=0)
        logging.info("CUB: no %s; %d classes from the largest id of %s", classes_path, n_child, labels_path)
    for line_no, (value, *_) in labels.values():
        if not 1 <= _positive_int(labels_path, line_no, value, "a class id") <= n_child:
            raise DataError(f"{labels_path}:{line_no}: class {value} is outside 1..{n_child} (the classes of "
                            f"{classes_path if os.path.exists(classes_path) else labels_path})")
    return n_child


def read_class_parents(path: str, n_child: int) -> tuple[int, ...]:
    """The parent (0-based) of each class from lines '<class_id> <parent_id>' (1-based, as classes.txt).

    Every class 1..n_child has one line and the parents are 1..N_P without a gap. Groups may differ in size:
    the grouping is ground truth for evaluating the parent clusters, the model's own hierarchy stays
    contiguous blocks (design §1).
    """
    rows = _read_table(path, "lines '<class_id> <parent_id>' (1-based ids)", 2)
    parents = {}
    for key, (line_no, (value, *_)) in rows.items():
        child = _positive_int(path, line_no, key, "a class id")
        if child > n_child:
            raise DataError(f"{path}:{line_no}: class {child} is outside 1..{n_child} (the dataset's classes)")
        parents[child] = _positive_int(path, line_no, value, "a parent id")
    missing = [c for c in range(1, n_child + 1) if c not in parents]
    if missing:
        raise DataError(f"{path}: no line for class {missing[0]} ({len(missing)} of {n_child} classes have no "
                        f"parent)")
    used = sorted(set(parents.values()))
    if used != list(range(1, len(used) + 1)):
        gap = next(i for i, p in enumerate(used, 1) if p != i)
        raise DataError(f"{path}: parent ids must be 1..N_P without a gap; parent {gap} has no class "
                        f"(ids used: {used[:10]}{' ...' if len(used) > 10 else ''})")
    return tuple(parents[c] - 1 for c in range(1, n_child + 1))


def _load_cub(cfg: DataConfig) -> Source:
    if not cfg.data_dir:
        raise DataError("--dataset=cub needs --data_dir: the folder holding CUB_200_2011/ (and "
                        "segmentations/), see data/README.md")
    nested = os.path.join(cfg.data_dir, "CUB_200_2011")
    root = nested if os.path.isdir(nested) else cfg.data_dir
    images = _read_table(os.path.join(root, "images.txt"), "lines '<image_id> <relative image path>'", 2)
    labels = _read_table(os.path.join(root, "image_class_labels.txt"),
                         "lines '<image_id> <class_id 1..N_C>'", 2)
    boxes = _read_table(os.path.join(root, "bounding_boxes.txt"),
                        "lines '<image_id> <x> <y> <width> <height>'", 5)
    image_root = _require(os.path.join(root, "images"), "the folder of CUB images named in images.txt")
    candidates = [os.path.join(root, "segmentations"), os.path.join(os.path.dirname(root), "segmentations")]
    seg_root = next((c for c in candidates if os.path.isdir(c)), None)
    if seg_root is None:
        logging.warning("CUB: no segmentations/ folder at %s; evaluation will have no masks",
                        " or ".join(candidates))
    n_child = _cub_classes(root, labels)
    # Without a parent file the parents are the model's contiguous blocks, which need its N_P: they are
    # filled in where the model is known (`pipeline.eval_dataset(classes=...)`).
    parents = read_class_parents(cfg.class_parents, n_child) if cfg.class_parents else None
    n_parent = max(parents) + 1 if parents else None
    raws = []
    for image_id, (_, (rel, *_)) in images.items():
        for table, name in ((labels, "image_class_labels.txt"), (boxes, "bounding_boxes.txt")):
            if image_id not in table:
                raise DataError(f"{os.path.join(root, name)}: no line for image_id {image_id} ({rel})")
        child = int(labels[image_id][1][0]) - 1
        box_line, box = boxes[image_id]
        try:
            x, y, w, h = (float(v) for v in box[:4])
        except ValueError:
            raise DataError(f"{os.path.join(root, 'bounding_boxes.txt')}:{box_line}: expected numbers "
                            f"'<x> <y> <width> <height>', got {' '.join(box)!r}") from None
        mask = None
        if seg_root is not None:
            mask = _require(os.path.join(seg_root, os.path.splitext(rel)[0] + ".png"),
                            f"the segmentation mask of {rel} (CUB's segmentations/ release)")
        raws.append(_Raw(key=rel, image=os.path.join(image_root, rel), bbox=(x, y, x + w, y + h),
                         child=child, parent=parents[child] if parents else -1, mask=mask))
    examples, corrupt = _validate(raws)
    return Source("cub", n_child, n_parent, seg_root is not None, True, examples, corrupt=corrupt)


def _mask_dir_lookup(mask_dir: str) -> dict[str, str]:
    _require(mask_dir, "--mask_dir: a folder of mask PNGs named like the images (file stem)")
    return {os.path.splitext(f)[0]: os.path.join(mask_dir, f) for f in sorted(os.listdir(mask_dir))
            if f.lower().endswith(".png")}


def _attach_mask_dir(raws: list[_Raw], mask_dir: str, stem_of) -> None:
    masks = _mask_dir_lookup(mask_dir)
    missing = [r.key for r in raws if stem_of(r) not in masks]
    if missing:
        raise DataError(f"--mask_dir={mask_dir} has no <stem>.png for {len(missing)} of {len(raws)} images, "
                        f"e.g. {os.path.join(mask_dir, stem_of(next(r for r in raws if r.key == missing[0])))}"
                        f".png (for image {missing[0]})")
    for r in raws:
        r.mask = masks[stem_of(r)]


def _image_files(folder: str) -> list[str]:
    """Every image file under `folder` (by name ending, any depth), paths relative to it, sorted."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.relpath(os.path.join(parent, f), folder) for f in sorted(files)
                  if f.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def _load_plain_folder(cfg: DataConfig) -> Source:
    """A tree of images and nothing else: no boxes, no labels; masks only through --mask_dir."""
    root = cfg.data_dir
    if not os.path.isdir(root):
        raise DataError(f"--data_dir={root} is not a folder")
    if os.path.isdir(os.path.join(root, "images")):
        root = os.path.join(root, "images")
    files = _image_files(root)
    if not files:
        raise DataError(f"--dataset=folder --data_dir={cfg.data_dir}: no annotations.json and no image files "
                        f"({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    logging.info("folder %s: no annotations.json; %d images used whole, without labels", cfg.data_dir,
                 len(files))
    raws = [_Raw(key=rel, image=os.path.join(root, rel), bbox=None) for rel in files]
    if cfg.mask_dir:
        _attach_mask_dir(raws, cfg.mask_dir, lambda r: os.path.splitext(os.path.basename(r.key))[0])
    has_masks = all(r.mask is not None for r in raws)
    examples, corrupt = _validate(raws)
    return Source("folder", None, None, has_masks, False, examples, corrupt=corrupt, has_boxes=False)


def load_backgrounds(folder: str) -> tuple[tuple[Example, ...], tuple[tuple[str, str], ...]]:
    """The object-free images of `--background_dir` (any depth), validated like a source's images."""
    if not os.path.isdir(folder):
        raise DataError(f"--background_dir={folder} is not a folder: expected a tree of object-free images "
                        f"(see data/README.md, 'Training without boxes')")
    files = _image_files(folder)
    if not files:
        raise DataError(f"--background_dir={folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return _validate(_Raw(key=rel, image=os.path.join(folder, rel), bbox=None) for rel in files)


def _load_folder(cfg: DataConfig) -> Source:
    if not cfg.data_dir:
        raise DataError("--dataset=folder needs --data_dir: a folder of images, optionally with "
                        "annotations.json (see data/README.md)")
    ann_path = os.path.join(cfg.data_dir, "annotations.json")
    if not os.path.exists(ann_path):
        return _load_plain_folder(cfg)
    with open(_require(ann_path, "a JSON list of {file, bbox: [x0, y0, x1, y1], child?, parent?, mask?}")) as f:
        annotations = json.load(f)
    spec = {}
    spec_path = os.path.join(cfg.data_dir, "spec.json")
    if os.path.exists(spec_path):
        with open(spec_path) as f:
            spec = json.load(f)

    def resolve(name, sub):
        for p in (os.path.join(cfg.data_dir, name), os.path.join(cfg.data_dir, sub, name)):
            if os.path.exists(p):
                return p
        return _require(os.path.join(cfg.data_dir, sub, name), f"the file named in {ann_path}")

    raws = []
    for i, a in enumerate(annotations):
        if "file" not in a or "bbox" not in a:
            raise DataError(f"{ann_path}: entry {i} needs 'file' and 'bbox' [x0, y0, x1, y1], got {a}")
        raws.append(_Raw(key=a["file"], image=resolve(a["file"], "images"), bbox=tuple(a["bbox"]),
                         child=int(a.get("child", -1)), parent=int(a.get("parent", -1)),
                         mask=resolve(a["mask"], "masks") if a.get("mask") else None))
    has_labels = bool(raws) and all(r.child >= 0 for r in raws)
    if spec.get("n_child") and spec.get("n_parents"):  # parents follow from children (SPEC §1)
        for r in raws:
            if r.parent < 0:
                r.parent = parent_of(r.child, spec["n_child"], spec["n_parents"])
    n_child = spec.get("n_child") or (max(r.child for r in raws) + 1 if has_labels else None)
    n_parent = spec.get("n_parents") or spec.get("n_parent") or (
        max(r.parent for r in raws) + 1 if raws and all(r.parent >= 0 for r in raws) else None)
    if n_child is None and "n_parents" in spec and "children_per_parent" in spec:
        n_child = spec["n_parents"] * spec["children_per_parent"]
    if cfg.mask_dir:
        _attach_mask_dir(raws, cfg.mask_dir, lambda r: os.path.splitext(os.path.basename(r.key))[0])
    has_masks = bool(raws) and all(r.mask is not None for r in raws)
    examples, corrupt = _validate(raws)
    return Source("folder", n_child, n_parent, has_masks, has_labels, examples, corrupt=corrupt)


def _load_tfds(cfg: DataConfig) -> Source:
    import tensorflow_datasets as tfds

    name = cfg.dataset
    n_child, n_parent = DATASET_CLASSES[TFDS_DATASETS[name]]
    builder = tfds.builder(name, data_dir=cfg.data_dir or None)
    if cfg.tfds_download or cfg.tfds_manual_dir:
        download_config = tfds.download.DownloadConfig(manual_dir=cfg.tfds_manual_dir or None)
        builder.download_and_prepare(download_config=download_config)
    splits = [s.strip() for s in cfg.tfds_splits.split(",") if s.strip()]
    decoders = {"image": tfds.decode.SkipDecoding()}
    if "segmentation_mask" in builder.info.features:
        decoders["segmentation_mask"] = tfds.decode.SkipDecoding()
    raws = []
    for split in splits:
        try:
            ds = builder.as_dataset(split=split, decoders=decoders, shuffle_files=False)
        except AssertionError as e:  # TFDS' "Dataset not found" is an AssertionError
            raise DataError(f"TFDS dataset {name} (split {split}) is not prepared under "
                            f"{cfg.data_dir or '~/tensorflow_datasets'}: pass --tfds_download (or "
                            f"--tfds_manual_dir) to prepare it. TFDS said: {e}") from e
        for i, ex in enumerate(tfds.as_numpy(ds)):
            fname = ex.get("image/filename", ex.get("id", b""))
            fname = fname.decode() if isinstance(fname, bytes) else str(fname)
            box = ex["bbox"] if "bbox" in ex else _largest_box(ex["objects"]["bbox"])
            child = int(ex["label"])
            raws.append(_Raw(key=f"{split}/{fname}" if fname else f"{split}/{i:06d}",
                             image=ex["image"], bbox=tuple(float(v) for v in box), child=child,
                             parent=parent_of(child, n_child, n_parent), mask=ex.get("segmentation_mask"),
                             bbox_normalized_yx=True))
    if cfg.mask_dir:
        _attach_mask_dir(raws, cfg.mask_dir, lambda r: os.path.splitext(os.path.basename(r.key))[0])
    has_masks = bool(raws) and all(r.mask is not None for r in raws)
    files_dir = os.path.join(cfg.data_dir or os.path.expanduser("~/tensorflow_datasets"),
                             "onegan_tf_files", name)
    _extract_to_files(raws, files_dir)
    examples, corrupt = _validate(raws)
    return Source(name, n_child, n_parent, has_masks, True, examples, corrupt=corrupt)


def _largest_box(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes).reshape(-1, 4)
    if not len(boxes):
        return np.array([0.0, 0.0, 1.0, 1.0])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[int(np.argmax(areas))]


def _extract_to_files(raws: list[_Raw], files_dir: str) -> None:
    """Write in-memory TFDS images/masks as files once, so tf.data reads them by path (an in-graph table
    of a gigabyte of JPEG bytes would exceed the 2 GB graph limit)."""
    os.makedirs(files_dir, exist_ok=True)
    for r in raws:
        stem = hashlib.sha1(r.key.encode()).hexdigest()[:16]
        for attr, suffix in (("image", ".img"), ("mask", ".mask.png")):
            value = getattr(r, attr)
            if value is None or isinstance(value, str):
                continue
            path = os.path.join(files_dir, stem + suffix)
            data = value if isinstance(value, bytes) else _encode_png(np.asarray(value))
            if not os.path.exists(path) or os.path.getsize(path) != len(data):
                tmp = path + ".tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            setattr(r, attr, path)


def _load_synthetic(cfg: DataConfig) -> Source:
    from onegan_tf.data import synthetic

    spec = synthetic.SyntheticSpec(n_parents=cfg.synthetic_parents,
                                   children_per_parent=cfg.synthetic_children_per_parent,
                                   resolution=cfg.synthetic_resolution, seed=cfg.synthetic_seed)
    n_train, n_test = cfg.synthetic_train_size, cfg.synthetic_test_size
    # The test split comes from the disjoint index range [n_train, n_train + n_test).
    cache = None
    if cfg.data_dir:
        cache = os.path.join(cfg.data_dir, f"synthetic_p{spec.n_parents}_c{spec.children_per_parent}_"
                             f"r{spec.resolution}_s{spec.seed}_n{n_train}+{n_test}.npz")
    if cache and os.path.exists(cache):
        arrays = dict(np.load(cache))
    else:
        # generate() is a pure function of (spec, index) and mostly numpy, so threads overlap well.
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            items = list(pool.map(lambda i: synthetic.generate(spec, i), range(n_train + n_test)))
        arrays = {k: np.stack([np.asarray(it[k]) for it in items]) if items else np.zeros((0,))
                  for k in ("image", "mask", "bbox", "child", "parent")}
        if cache:
            os.makedirs(cfg.data_dir, exist_ok=True)
            tmp = cache + ".tmp.npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, cache)
    raws = [_Raw(key=f"{'train' if i < n_train else 'test'}/{i:06d}", image=arrays["image"][i],
                 bbox=tuple(int(v) for v in arrays["bbox"][i]), child=int(arrays["child"][i]),
                 parent=int(arrays["parent"][i]), mask=arrays["mask"][i]) for i in range(n_train + n_test)]
    if arrays["image"].nbytes > _MAX_IN_MEMORY_BYTES:  # see _extract_to_files
        _extract_to_files(raws, (cache[:-len(".npz")] + "_files") if cache else
                          tempfile.mkdtemp(prefix="onegan_tf_synthetic_"))
    examples, corrupt = _validate(raws)
    train = tuple(e for e in examples if e.key.startswith("train/"))
    test = tuple(e for e in examples if e.key.startswith("test/"))
    return Source("synthetic", spec.n_child, spec.n_parents, True, True, train, test_examples=test,
                  corrupt=corrupt)


# ----------------------------------------------------------------------------------------------- validate


def _encode_png(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _open(value: str | bytes) -> Image.Image:
    return Image.open(value if isinstance(value, str) else io.BytesIO(value))


def _inspect(value: str | bytes | np.ndarray, want_rgb: bool) -> tuple[str | bytes, int, int]:
    """(tf-decodable value, height, width); raises on an unreadable file."""
    if isinstance(value, np.ndarray):
        return _encode_png(value), int(value.shape[0]), int(value.shape[1])
    with _open(value) as im:
        width, height = im.size
        fmt, mode = im.format, im.mode
        if fmt == "JPEG":  # a reduced-scale decode still reads every byte, so truncation is caught
            im.draft("RGB" if want_rgb else "L", (max(1, width // 8), max(1, height // 8)))
        im.load()
        if fmt in _TF_FORMATS and mode in _TF_MODES:
            return value, height, width
    with _open(value) as im:  # re-encode what tf.io.decode_image would misread
        return _encode_png(np.asarray(im.convert("RGB" if want_rgb else "L"))), height, width


def _pixel_box(r: _Raw, height: int, width: int) -> tuple[int, int, int, int]:
    if r.bbox is None:  # no box: the whole image
        return 0, 0, width, height
    if r.bbox_normalized_yx:
        ymin, xmin, ymax, xmax = r.bbox
        box = (xmin * width, ymin * height, xmax * width, ymax * height)
    else:
        box = r.bbox
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    # The tolerance absorbs float32 round-off of normalised boxes (0.195122 * 41 = 7.99998 means 8).
    x0 = min(max(int(math.floor(x0 + 1e-3)), 0), width - 1)
    y0 = min(max(int(math.floor(y0 + 1e-3)), 0), height - 1)
    x1 = min(max(int(math.ceil(x1 - 1e-3)), x0 + 1), width)
    y1 = min(max(int(math.ceil(y1 - 1e-3)), y0 + 1), height)
    return x0, y0, x1, y1


class _UnreadableMask(Exception):
    pass


def _validate_one(r: _Raw) -> Example:
    image, height, width = _inspect(r.image, want_rgb=True)
    mask = None
    if r.mask is not None:
        try:
            mask, _, _ = _inspect(r.mask, want_rgb=False)
        except Exception as e:  # noqa: BLE001 - name the mask, not the image
            raise _UnreadableMask(f"mask {_name(r.mask, r.key)}: {type(e).__name__}: {e}") from e
    return Example(key=r.key, image=image, height=height, width=width, bbox=_pixel_box(r, height, width),
                   child=r.child, parent=r.parent, mask=mask)


def _name(value: Any, key: str) -> str:
    return value if isinstance(value, str) else key


def _validate(raws: Iterable[_Raw]) -> tuple[tuple[Example, ...], tuple[tuple[str, str], ...]]:
    """Open every image (and mask) once; unreadable ones are dropped, counted and named in the log."""
    raws = sorted(raws, key=lambda r: r.key)
    keys = [r.key for r in raws]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise DataError(f"two examples share the key {dup!r}; image files must be unique")
    examples, corrupt = [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = [pool.submit(_validate_one, r) for r in raws]
        for r, fut in zip(raws, futures):
            try:
                examples.append(fut.result())
            except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable", reported below
                corrupt.append((_name(r.image, r.key), f"{type(e).__name__}: {e}"))
    for name, reason in corrupt:
        logging.warning("skipping unreadable image %s (%s)", name, reason)
    if corrupt:
        logging.warning("skipped %d unreadable image(s) of %d", len(corrupt), len(raws))
    return tuple(examples), tuple(corrupt)
