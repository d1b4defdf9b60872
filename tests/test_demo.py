"""The demo end to end, shortened: `python -m onegan_tf.train --flagfile=configs/demo.cfg` with a
few dozen steps must train, evaluate on the held-out split, compare with the baselines, export the SavedModel
and write report.md — in one process started as `python -m` (as the README's command does)."""

import json
import os

import pytest

from tests.tiny import REPO, run_train

pytestmark = pytest.mark.slow


def test_shortened_demo_trains_evaluates_exports_and_writes_the_report(tmp_path):
    run_dir = str(tmp_path / "demo")
    result = run_train(
        f"--flagfile={os.path.join(REPO, 'configs', 'demo.cfg')}", f"--run_dir={run_dir}",
        "--synthetic_train_size=120", "--synthetic_test_size=36", "--batch_size=4", "--channel_mult=0.125",
        "--phase1_steps=12", "--phase2a_steps=6", "--phase2b_steps=12", "--log_every=10", "--image_every=30",
        "--ckpt_every=30", "--final_num_generated=24", "--distill_steps=6", "--noprogress", timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]

    report_md = open(os.path.join(run_dir, "report.md")).read()
    for row in ("mask IOU", "child NMI", "parent ACC", "FID", "CIS", "all foreground", "centred disc",
                "k-means on pixels (k=12)", "k-means on pixels (k=4)", "distilled segmenter", "encoder masks",
                "FID ↓ (EMA weights)", "FID ↓ (raw weights)", "images/s, distilled segmenter"):
        assert row in report_md, row
    assert "GFLOP/s then" in report_md   # the training's wall time beside the machine's ceiling convolution
    final = json.load(open(os.path.join(run_dir, "eval", "final.json")))
    metrics = final["report"]["metrics"]
    assert set(metrics) == {"segmentation", "segmentation_distilled", "clustering", "fid", "is", "cfid", "cis"}
    assert set(final["raw_generation"]) == {"fid", "is", "cfid", "cis"}
    assert 0.0 <= metrics["segmentation"]["iou"] <= 1.0 and 0.0 <= metrics["clustering"]["child_nmi"] <= 1.0
    assert final["report"]["split"] == "test" and final["report"]["n_images"] == 36
    assert set(final["baselines"]) == {"all_foreground", "centred_disc", "border_colour", "kmeans_child",
                                       "kmeans_parent"}
    for name in ("generation", "reconstruction", "translation", "conditional_generation", "removal"):
        path = os.path.join(run_dir, "eval", f"{name}.png")
        assert os.path.getsize(path) > 0 and f"eval/{name}.png" in report_md
    export = os.path.join(run_dir, "export", "onegan", "30")
    assert os.path.exists(os.path.join(export, "saved_model.pb"))
    assert os.path.exists(os.path.join(export, "assets.extra", "tf_serving_warmup_requests"))
    assert os.path.exists(os.path.join(run_dir, "segmenter.keras"))


def test_more_parent_codes_than_the_datas_parents_are_scored_merged_by_shape(tmp_path):
    """--n_parent=12 on the demo's 4 shape families: training accepts it, and the report scores E_p's codes
    merged by shape into 4 groups beside k-means with k = 4 (docs/design.md §7)."""
    run_dir = str(tmp_path / "p12")
    result = run_train(
        f"--flagfile={os.path.join(REPO, 'configs', 'demo.cfg')}", f"--run_dir={run_dir}", "--n_parent=12",
        "--synthetic_train_size=48", "--synthetic_test_size=24", "--batch_size=4", "--channel_mult=0.125",
        "--phase1_steps=4", "--phase2a_steps=2", "--phase2b_steps=4", "--image_every=100", "--ckpt_every=100",
        "--final_eval=segmentation,clustering", "--distill_steps=0", "--nofinal_export", "--noprogress",
        timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--n_parent=12 parent codes for the 4 parent classes" in result.stderr
    clustering = json.load(open(os.path.join(run_dir, "eval", "final.json")))["report"]["metrics"]["clustering"]
    assert clustering["parent_classes"] == 4 and 0.0 <= clustering["parent_merged_nmi"] <= 1.0
    report_md = open(os.path.join(run_dir, "report.md")).read()
    assert "parent NMI, codes merged by shape into 4" in report_md
    assert "k-means on pixels (k=4)" in report_md and "k-means on pixels (k=12)" in report_md  # parents; children
