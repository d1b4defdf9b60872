"""The end of a run: evaluation, honest baselines, figure grids, SavedModel export and `report.md`.

`finalize_run(cfg)` is what `python -m onegan_tf.train` does after the last step when `--final_eval` names
metrics (the demo flagfile does):
1. the feature network of the generation metrics: a small CNN fine-tuned on the child labels of the
   training (object) split — the paper used an InceptionV3 fine-tuned per dataset; `--final_feature_net`
   gives another;
2. `evaluate.evaluate` on `--final_split` (the synthetic set's held-out `test` split by default);
3. `baselines.all_baselines` on the very same images (the centred disc's area from the training split);
4. the SavedModel export under run_dir/export (`export.export_saved_model`);
5. run_dir/report.md: a metrics table beside the baselines, the figure grids, and where everything is.

With the EMA generator (`--generator_weights=ema`, the default) the evaluation, figures and export use the
averaged V_*, G_*, and the generation metrics are computed a second time with the raw weights (eval/raw/)
so the report shows both; a run with a distilled segmenter is also scored with it (`segmentation_distilled`)
beside the encoder masks, with both routes' speed in images/s.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Sequence

import numpy as np
from absl import flags

from onegan_tf import baselines, classifier, cli, data, evaluate, export
from onegan_tf.checkpoint import load_config, load_run
from onegan_tf.config import Config
from onegan_tf.files import write_json, write_text
from onegan_tf.metrics.segmentation import foreground

# The feature network of the generation metrics: `classifier.fit_classifier`'s small CNN, trained so.
CLASSIFIER_EPOCHS = 8
CLASSIFIER_BATCH_SIZE = 64
CLASSIFIER_VAL_FRACTION = 0.1


def collect(data_cfg, image_size: int, split: str, batch_size: int = 100,
            classes: tuple[int, int] | None = None) -> dict:
    """A whole (small) evaluation split as numpy arrays: image, mask (bool, H x W), child, parent
    (`classes` as in `data.eval_dataset`)."""
    parts = {"image": [], "mask": [], "child": [], "parent": []}
    for batch in data.eval_dataset(data_cfg, image_size, batch_size, split, classes):
        for k in parts:
            if k in batch:
                parts[k].append(batch[k].numpy())
    out = {k: np.concatenate(v) for k, v in parts.items() if v}
    if "mask" in out:
        out["mask"] = foreground(out["mask"][..., 0])
    return out


def train_feature_classifier(cfg: Config, out_path: str, epochs: int = CLASSIFIER_EPOCHS,
                             train: dict | None = None) -> dict:
    """Fine-tune the small CNN of `onegan_tf.classifier` on the training split's crops and child labels, as
    `python -m onegan_tf.classifier --backbone=small_cnn` would (`classifier.fit_classifier`).

    train: `collect(cfg.data, image_size, "object")` when the caller already has it.
    Returns the classifier's path, train_images and val_accuracy.
    """
    train = collect(cfg.data, cfg.model.image_size, "object") if train is None else train
    if np.any(train["child"] < 0):
        raise ValueError(f"dataset {cfg.data.dataset!r} has no child labels to fine-tune a feature network on")
    fit = classifier.fit_classifier(train["image"], train["child"], cfg.model.n_child, out_path, epochs=epochs,
                                    batch_size=CLASSIFIER_BATCH_SIZE, val_fraction=CLASSIFIER_VAL_FRACTION,
                                    seed=cfg.train.seed, verbose=0)
    return {k: fit[k] for k in ("path", "val_accuracy", "train_images")}


GENERATION_METRICS = ("fid", "is", "cfid", "cis")


def finalize_run(cfg: Config, model=None, step: int | None = None, raw_model=None, segmenter=None) -> dict:
    """Evaluate the finished run of `cfg`, compare with the baselines, export it and write report.md.

    model: the run's model with its --generator_weights (loaded from the checkpoint when None); raw_model:
    the same with the raw V_*, G_* when model holds the EMA's; segmenter: the distilled segmenter, if any.
    """
    tc, mc = cfg.train, cfg.model
    run_dir = tc.run_dir
    out_dir = os.path.join(run_dir, "eval")
    if model is None:
        run = load_run(run_dir)
        model, step, segmenter = run.model, run.step, run.segmenter
        if run.weights == "ema":
            raw_model = load_run(run_dir, weights="raw").model
    t0 = time.time()
    metrics = [m.strip() for m in tc.final_eval.split(",") if m.strip()]
    if segmenter is not None and "segmentation" in metrics and "segmentation_distilled" not in metrics:
        metrics.append("segmentation_distilled")
    trained = None
    feature_net = tc.final_feature_net
    # The training split is read once: it trains the feature network and gives the centred-disc baseline its area.
    train_split = collect(cfg.data, mc.image_size, "object")
    if feature_net == "finetuned" and any(m in metrics for m in ("fid", "is", "cfid", "cis")):
        trained = train_feature_classifier(cfg, os.path.join(out_dir, "feature_classifier.keras"),
                                           train=train_split)
        feature_net = trained["path"]
    report = evaluate.evaluate(run_dir, metrics, split=tc.final_split, feature_net=feature_net,
                               num_generated=tc.final_num_generated, out_dir=out_dir, seed=tc.seed,
                               progress=tc.progress, model=model, segmenter=segmenter)
    report["generator_weights"] = "raw" if raw_model is None else "ema"
    raw_generation = [m for m in metrics if m in GENERATION_METRICS]
    raw_report = None
    if raw_model is not None and raw_generation:
        raw_report = evaluate.evaluate(run_dir, raw_generation, split=tc.final_split, feature_net=feature_net,
                                       num_generated=tc.final_num_generated, out_dir=os.path.join(out_dir, "raw"),
                                       seed=tc.seed, figures=False, progress=tc.progress, model=raw_model)
    real = collect(cfg.data, mc.image_size, tc.final_split, classes=(mc.n_child, mc.n_parent))
    area = baselines.mean_area_fraction(train_split["mask"]) if "mask" in real else None
    # k-means on the parents takes k = the data's parent classes, fewer than N_P when the codes are merged.
    k_parent = min(mc.n_parent, data.describe(cfg.data)["n_parent"] or mc.n_parent)
    base = (baselines.all_baselines(real["image"], real["mask"], real.get("child"), real.get("parent"), area,
                                    mc.n_child, k_parent, tc.seed) if "mask" in real else {})
    export_path = None
    if tc.final_export:
        export_path = export.export_saved_model(model, os.path.join(run_dir, "export"), "onegan",
                                                step=step or 0, segmenter=segmenter)
    summary = {"report": report, "raw_generation": raw_report and raw_report["metrics"], "baselines": base,
               "classifier": trained, "export": export_path, "wall_s": round(time.time() - t0, 1)}
    write_json(os.path.join(out_dir, "final.json"), summary)
    write_text(os.path.join(run_dir, "report.md"), markdown(cfg, summary))
    return summary


def _fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}f}"


def metric_rows(report: dict, base: dict, raw_generation: dict | None = None) -> list[tuple[str, str, str, str]]:
    """(task, measure, OneGAN, baselines) rows of the report table."""
    m = report["metrics"]
    rows = []
    routes = [(k, label) for k, label in (("segmentation", "encoder masks"),
                                          ("segmentation_distilled", "distilled segmenter")) if k in m]
    for key in ("iou", "dice"):
        for metric, label in routes:
            b = ", ".join(f"{name.replace('_', ' ')} {_fmt(base[name][key])}" for name in
                          ("all_foreground", "centred_disc", "border_colour") if name in base)
            which = f", {label}" if len(routes) > 1 else ""
            rows.append(("segmentation", f"mask {key.upper()} (per image{which})", _fmt(m[metric][key]), b))
    if len(routes) > 1:
        enc, dist = (m[k]["images_per_s"] for k, _ in routes)
        rows.append(("segmentation", "images/s, reconstruction path (3 encoders, 2 generators)", f"{enc:.0f}", ""))
        passes = ("one U-Net on the image and its mirror"
                  if report.get("config", {}).get("train", {}).get("distill_flip_average") else "one U-Net")
        rows.append(("segmentation", f"images/s, distilled segmenter ({passes})",
                     f"{dist:.0f} ({dist / enc:.1f}x)", ""))
    if "clustering" in m:
        c = m["clustering"]
        merged = "parent_merged_nmi" in c  # more parent codes than parent classes (docs/design.md §7)
        levels = [("child", "kmeans_child", "child", ""), ("parent", "kmeans_parent", "parent",
                                                           ", codes unmerged" if merged else "")]
        if merged:
            levels.append(("parent_merged", "kmeans_parent", "parent",
                           f", codes merged by shape into {c['parent_classes']}"))
        for prefix, k, level, how in levels:
            for key in ("acc", "nmi"):
                b = f"k-means on pixels (k={base[k]['k']}) {_fmt(base[k][key])}" if k in base else ""
                if prefix == "parent" and key == "acc" and k in base:
                    b += f"; chance {_fmt(base[k]['chance_acc'])}"
                rows.append(("clustering", f"{level} {key.upper()}{how}", _fmt(c[f'{prefix}_{key}']), b))
    ema = report.get("generator_weights") == "ema"
    for name, key, label in (("fid", "fid", "FID ↓"), ("is", "is", "IS ↑"), ("cfid", "cfid", "CFID ↓"),
                             ("cis", "cis", "CIS ↑")):
        if name in m:
            rows.append(("generation", label + (" (EMA weights)" if ema else ""), _fmt(m[name][key], 2), ""))
        if raw_generation and name in raw_generation:
            rows.append(("generation", f"{label} (raw weights)", _fmt(raw_generation[name][key], 2), ""))
    return rows


def _machine_lines(run_dir: str) -> list[str]:
    """The training run's wall time beside the machine's ceiling convolution (summary.json), when recorded."""
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        s = json.load(f)
    if "machine" not in s:
        return []
    m = s["machine"]
    return ["", f"Training took {s['wall_s']} s ({s['images_per_s']:.1f} images/s at the end) on {m['cpu_model']} "
                f"({m['sched_cpus']} CPUs, 1-minute load {m['loadavg'][0]:.2f} at the end), whose {m['ceiling_conv']} "
                f"ran at {m['ceiling_conv_gflop_per_s']} GFLOP/s then: compare machines by that figure, not by "
                f"the wall time alone."]


def markdown(cfg: Config, summary: dict) -> str:
    report, base = summary["report"], summary["baselines"]
    lines = [f"# OneGAN run `{cfg.train.run_dir}`", "",
             f"Dataset `{report['dataset']}`, evaluated on split `{report['split']}` ({report['n_images']} images); "
             f"image size {cfg.model.image_size}, channel multiplier {cfg.model.channel_mult}, "
             f"{cfg.train.steps} steps (Phase I {cfg.train.phase1_steps}, IIa {cfg.train.phase2a_steps}, "
             f"IIb {cfg.train.phase2b_steps}), batch {cfg.train.batch_size}; mask regulariser target "
             f"{cfg.train.mask_fraction:.3f}"
             + (" (`--mask_target=auto`: estimated from the training split's object boxes)."
                if cfg.train.mask_target.startswith("auto") else "."), "",
             "| task | measure | OneGAN | trivial baselines (same images) |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in metric_rows(report, base, summary.get("raw_generation"))]
    lines += _machine_lines(cfg.train.run_dir)
    lines.append("")
    if "border_colour" in base:
        lines.append(f"The border-colour baseline uses the best threshold on these very images "
                     f"({base['border_colour']['threshold']:.2f}): an optimistic bound. The centred disc has "
                     f"the training split's mean object area ({base['centred_disc']['area_fraction']:.3f}).")
    if summary.get("classifier"):
        c = summary["classifier"]
        val = ("no images held out" if c["val_accuracy"] is None
               else f"validation accuracy {c['val_accuracy']:.3f}")
        lines.append(f"Generation metrics use a small CNN fine-tuned on the training split's child labels "
                     f"({c['train_images']} images, {val}): `{c['path']}`.")
    lines += ["", "## Figures", ""]
    captions = {"generation": "Generation (paper Fig. 3): rows I, I_fg, I_m, I_bg.",
                "reconstruction": "Reconstruction (paper Fig. 4): real, Î, Î_fg, Î_bg, ground-truth mask, Î_m.",
                "translation": "Translation (paper Fig. 6): real images, then one column per target child class.",
                "conditional_generation": "Conditional generation (suppl. Fig. 1): real images on top, then "
                                          "generations with their encoded classes, one z per row.",
                "removal": "Object removal (suppl. Fig. 4): original, masked by the predicted mask, repainted "
                           "background."}
    for name, path in report.get("figures", {}).items():
        rel = os.path.relpath(path, cfg.train.run_dir)
        lines += [f"**{captions.get(name, name)}**", "", f"![{name}]({rel})", ""]
    lines += ["## Files", "", "- metrics: `eval/report.json`, with baselines: `eval/final.json`",
              f"- checkpoint: `{report.get('checkpoint')}`"]
    if summary.get("export"):
        lines.append(f"- SavedModel for TF Serving: `{os.path.relpath(summary['export'], cfg.train.run_dir)}`")
    lines.append(f"- TensorBoard: `tensorboard --logdir {os.path.join(cfg.train.run_dir, 'tb')}`")
    return "\n".join(lines) + "\n"


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run_dir", None, "Run directory written by `python -m onegan_tf.train`.", flag_values=fv)
    flags.DEFINE_string("metrics", None, "Override the run's --final_eval (comma-separated metrics).",
                        flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m onegan_tf.report --run_dir=RUN`: (re)do the end of a finished run with its own settings."""
    fv = cli.parse(argv, define_flags, ["run_dir"],
                   "python -m onegan_tf.report --run_dir=RUN [--metrics=segmentation,clustering,...]")
    if fv is None:
        return 2
    cfg = load_config(fv.run_dir)
    if fv.metrics is not None or cfg.train.run_dir != fv.run_dir:
        train = dataclasses.replace(cfg.train, run_dir=fv.run_dir,
                                    final_eval=cfg.train.final_eval if fv.metrics is None else fv.metrics)
        cfg = dataclasses.replace(cfg, train=train)
    summary = finalize_run(cfg)
    print(f"wrote {os.path.join(fv.run_dir, 'report.md')} ({summary['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
