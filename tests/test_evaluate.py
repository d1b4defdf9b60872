"""Evaluation driver: the EvalContext over the eval pipeline and the model, requirement errors before any
heavy work, the report and figures, the CLI. Uses the tiny run of test_tasks.py and a tiny untrained
`.keras` classifier (`onegan_tf.classifier` small_cnn) as the feature network."""

import json
import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image
from test_tasks import tiny_run
from tiny import REPO, train_env

from onegan_tf import evaluate as ev
from onegan_tf.checkpoint import load_run
from onegan_tf.metrics import MetricError

ALL = ["segmentation", "clustering", "fid", "is", "cfid", "cis"]
REPORT_KEYS = {"metrics", "config", "run_dir", "checkpoint", "step", "split", "dataset", "n_images",
               "num_generated", "batch_size", "seed", "feature_net", "figures", "out_dir", "wall_s"}


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="session")
def model(run):
    return load_run(run["run_dir"]).model


@pytest.fixture(scope="session")
def classifier(tmp_path_factory):
    from onegan_tf.classifier import build_classifier

    path = str(tmp_path_factory.mktemp("classifier") / "small.keras")
    build_classifier(12, "small_cnn", image_size=32).save(path)
    return path


def _folder_run(root, labels=True):
    """A run directory over a folder dataset without masks (and optionally without labels); no checkpoint."""
    from tiny import tiny_config

    from onegan_tf.files import write_json

    data = root / "data"
    (data / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    annotations = []
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(data / "images" / f"{i}.png")
        annotations.append({"file": f"{i}.png", "bbox": [10, 10, 30, 30], **({"child": i % 12} if labels else {})})
    (data / "annotations.json").write_text(json.dumps(annotations))
    cfg = tiny_config(dataset="folder", data_dir=str(data), run_dir=str(root))
    write_json(str(root / "config.json"), cfg.to_dict())
    return str(root)


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fail the test if the evaluation loads a model (requirement errors must come first)."""
    import onegan_tf.checkpoint

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the requirement check")

    monkeypatch.setattr(onegan_tf.checkpoint, "load_run", refuse)


# ------------------------------------------------------------------------------------- requirement errors


def test_missing_masks_are_named_before_any_heavy_work(tmp_path, no_model_loading):
    run_dir = _folder_run(tmp_path)
    with pytest.raises(MetricError, match="'segmentation' needs ground-truth masks; dataset 'folder' has none"):
        ev.evaluate(run_dir, ["clustering", "segmentation"], progress=False)


def test_missing_labels_are_named(tmp_path, no_model_loading):
    run_dir = _folder_run(tmp_path, labels=False)
    with pytest.raises(MetricError, match="'cfid' needs child/parent class labels"):
        ev.evaluate(run_dir, ["cfid"], progress=False)


def test_too_few_generated_images_and_unknown_metrics(tmp_path, no_model_loading):
    run_dir = _folder_run(tmp_path)
    with pytest.raises(MetricError, match="'is' needs --num_generated >= 10"):
        ev.evaluate(run_dir, ["fid", "is"], num_generated=5, progress=False)
    with pytest.raises(MetricError, match="unknown metric.*'fidd'.*known metrics: cfid"):
        ev.evaluate(run_dir, ["fidd"], progress=False)
    with pytest.raises(ValueError, match="split='train'"):
        ev.evaluate(run_dir, ["fid"], split="train", progress=False)
    with pytest.raises(ValueError, match="split='train' is not supported"):
        ev.ModelEvalContext(model=None, cfg=None, split="train")  # the same rule, before the model is read


# ---------------------------------------------------------------------------------------- EvalContext


def test_eval_context_streams_batches_lazily_and_restarts(run, model):
    ctx = ev.ModelEvalContext(model, run["cfg"], "test", batch_size=5, progress=False)
    assert ctx.has_masks and ctx.has_labels and ctx.n_images == 12 and ctx._dataset is None
    batches = ctx.real_batches()
    assert isinstance(batches, types.GeneratorType) and ctx._dataset is None   # nothing read yet
    first = next(batches)
    assert first["image"].shape == (5, 32, 32, 3) and first["mask"].shape == (5, 32, 32)
    assert first["child"].shape == (5,) and first["parent"].shape == (5,)
    sizes = [len(b["image"]) for b in ctx.real_batches()]
    assert sizes == [5, 5, 2]                                                  # one batch at a time, restartable
    assert len(list(ctx.progress(ctx.real_batches(), "x"))) == math.ceil(12 / 5)


def test_eval_context_calls_return_what_the_metrics_read(run, model):
    ctx = ev.ModelEvalContext(model, run["cfg"], "test", batch_size=4, progress=False)
    images = next(ctx.real_batches())["image"]
    rec = ctx.reconstruct(images)
    assert rec["I_m"].shape == (4, 32, 32, 1) and rec["e_c_logits"].shape == (4, 12)
    assert rec["e_p_logits"].shape == (4, 4)
    assert ctx.generate(np.array([0, 3, 11]), seed=2)["I"].shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(ctx.generate(np.array([1, 2]), seed=2)["I"],
                                  ctx.generate(np.array([1, 2]), seed=2)["I"])
    like = ctx.generate_like(images, seed=0)["I"]
    assert like.shape == (4, 32, 32, 3) and np.abs(like).max() <= 1.0


def test_eval_context_gives_the_models_reconstruction_and_the_splits_aligned_masks(run, model):
    """What the metrics read is exactly the model's inference reconstruction (docs/design.md §7: default betas, encoder
    means) of each image and that image's own mask and labels, in the evaluation pipeline's order; the
    segmentation metric over the context equals the IoU computed here from those."""
    import tensorflow as tf

    from onegan_tf.data import pipeline
    from onegan_tf.metrics.segmentation import iou, mask_overlaps, segmentation

    cfg = run["cfg"]
    ctx = ev.ModelEvalContext(model, cfg, "test", batch_size=5, progress=False)
    classes = (model.cfg.n_child, model.cfg.n_parent)
    expected = list(pipeline.eval_dataset(cfg.data, 32, 5, "test", classes=classes).as_numpy_iterator())
    got = list(ctx.real_batches())
    assert [len(b["image"]) for b in got] == [len(b["image"]) for b in expected] == [5, 5, 2]
    pred, gt = [], []
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g["image"], e["image"])
        np.testing.assert_array_equal(g["mask"], e["mask"][..., 0])
        np.testing.assert_array_equal(g["child"], e["child"])
        np.testing.assert_array_equal(g["parent"], e["parent"])
        out, ref = ctx.reconstruct(g["image"]), model.reconstruct(tf.constant(g["image"]))
        for key, ref_key in (("I_m", "I_m_hat"), ("I_hat", "I_hat"), ("e_c_logits", "e_c_hat"),
                             ("e_p_logits", "e_p_hat")):
            np.testing.assert_allclose(out[key], ref[ref_key].numpy(), atol=1e-5, err_msg=key)
        pred.append(ref["I_m_hat"].numpy()[..., 0] > 0.5)
        gt.append(e["mask"][..., 0] > 0.5)
    inter, union, _ = mask_overlaps(np.concatenate(pred), np.concatenate(gt))
    assert segmentation(ctx)["iou"] == pytest.approx(float(iou(inter, union).mean()))


# ----------------------------------------------------------------------------------------------- reports


def test_evaluate_report_of_the_encoder_metrics(run, model, tmp_path):
    report = ev.evaluate(run["run_dir"], ["segmentation", "clustering"], split="test", out_dir=str(tmp_path),
                         figures=False, progress=False, model=model)
    assert REPORT_KEYS <= set(report) and report["figures"] == {}
    assert report["metrics"]["segmentation"]["n_images"] == 12
    assert 0.0 <= report["metrics"]["segmentation"]["iou"] <= 1.0
    assert report["feature_net"]["used"] is False          # no inception metric: the classifier is never built
    assert os.path.exists(tmp_path / "report.json")


@pytest.mark.slow
def test_evaluate_writes_report_table_and_figures(run, model, classifier, tmp_path):
    out = str(tmp_path / "eval")
    # The object split (32 images of 12 classes): CFID needs classes with two images or more.
    report = ev.evaluate(run["run_dir"], ALL, split="object", feature_net=classifier, num_generated=10,
                         batch_size=6, out_dir=out, progress=False, model=model)
    assert REPORT_KEYS <= set(report)
    assert set(report["metrics"]) == set(ALL)
    assert report["metrics"]["segmentation"]["n_images"] == 32 and report["n_images"] == 32
    assert {"child_acc", "child_nmi", "parent_acc", "parent_nmi"} <= set(report["metrics"]["clustering"])
    assert report["metrics"]["fid"]["n_generated"] == 10 and report["metrics"]["cis"]["n_generated"] == 32
    assert report["metrics"]["cfid"]["n_classes"] >= 1
    assert report["feature_net"]["spec"] == classifier and report["feature_net"]["used"]
    assert json.load(open(os.path.join(out, "report.json")))["metrics"] == report["metrics"]
    for name in ("generation", "reconstruction", "translation", "conditional_generation", "removal"):
        assert Image.open(os.path.join(out, f"{name}.png")).size[0] > 0
    # 6 real images per figure column, the ground-truth mask row included in Fig. 4.
    assert Image.open(os.path.join(out, "reconstruction.png")).size == (6 * 34 - 2, 6 * 34 - 2)
    table = ev.format_table(report)
    assert "segmentation" in table and "child_acc" in table


@pytest.mark.slow
def test_evaluate_cli_loads_the_checkpoint(run, classifier, tmp_path):
    out = str(tmp_path / "eval")
    cmd = [sys.executable, "-m", "onegan_tf.evaluate", f"--run_dir={run['run_dir']}",
           "--metrics=segmentation,clustering,fid", "--split=test", f"--feature_net={classifier}",
           "--num_generated=8", "--batch_size=6", f"--out={out}", "--noprogress"]
    proc = subprocess.run(cmd, env=train_env(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.load(open(os.path.join(out, "report.json")))
    assert report["step"] == 7 and report["checkpoint"].endswith("ckpt-7") and report["split"] == "test"
    assert "iou" in proc.stdout and "fid" in proc.stdout


def test_evaluate_cli_missing_masks_exits_with_the_message(tmp_path, capsys):
    """The command's `main` in this process: the test above starts `python -m onegan_tf.evaluate` already."""
    run_dir = _folder_run(tmp_path)
    assert ev.main(["evaluate", f"--run_dir={run_dir}", "--metrics=segmentation"]) == 2
    assert "needs ground-truth masks" in capsys.readouterr().err
