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
    # The demo trains 12 parent codes for the data's 4 families; the report scores them merged by shape too.
    assert "--n_parent=12 parent codes for the 4 parent classes" in result.stderr
    for row in ("mask IOU", "child NMI", "parent ACC", "parent NMI, codes merged by shape into 4", "FID", "CIS",
                "all foreground", "centred disc",
                "k-means on pixels (k=12)", "k-means on pixels (k=4)", "distilled segmenter", "encoder masks",
                "FID ↓ (EMA weights)", "FID ↓ (raw weights)", "images/s, distilled segmenter"):
        assert row in report_md, row
    assert "GFLOP/s then" in report_md   # the training's wall time beside the machine's ceiling convolution
    final = json.load(open(os.path.join(run_dir, "eval", "final.json")))
    metrics = final["report"]["metrics"]
    assert set(metrics) == {"segmentation", "segmentation_distilled", "clustering", "fid", "is", "cfid", "cis"}
    assert set(final["raw_generation"]) == {"fid", "is", "cfid", "cis"}
    assert 0.0 <= metrics["segmentation"]["iou"] <= 1.0 and 0.0 <= metrics["clustering"]["child_nmi"] <= 1.0
    assert metrics["clustering"]["parent_classes"] == 4 and 0.0 <= metrics["clustering"]["parent_merged_nmi"] <= 1.0
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
