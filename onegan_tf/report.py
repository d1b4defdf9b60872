"""The end of a run: evaluation, honest baselines, figure grids, SavedModel export and `report.md` (issue 9).

`finalize_run(cfg)` is what `python -m onegan_tf.train` does after the last step when `--final_eval` names
metrics (the demo flagfile does):
1. the feature network of the generation metrics: a small CNN fine-tuned on the child labels of the
   training (object) split — the paper used an InceptionV3 fine-tuned per dataset; `--final_feature_net`
   gives another;
2. `evaluate.evaluate` on `--final_split` (the synthetic set's held-out `test` split by default);
3. `baselines.all_baselines` on the very same images (the ellipse's area from the training split);
4. the SavedModel export under run_dir/export (`export.export_saved_model`);
5. run_dir/report.md: a metrics table beside the baselines, the figure grids, and where everything is.

With the EMA generator (`--generator_weights=ema`, the default) the evaluation, figures and export use the
averaged V_*, G_*, and the generation metrics are computed a second time with the raw weights (eval/raw/)
so the report shows both; a run with a distilled segmenter is also scored with it (`segmentation_distilled`)
beside the encoder masks, with both routes' speed in images/s.
"""

from __future__ import annotations

import os
import time

import numpy as np

from onegan_tf.config import Config

CLASSIFIER_EPOCHS = 8


def collect(data_cfg, image_size: int, split: str, batch_size: int = 100,
            classes: tuple[int, int] | None = None) -> dict:
    """A whole (small) evaluation split as numpy arrays: image, mask (bool, H x W), child, parent
    (`classes` as in `data.eval_dataset`)."""
    from onegan_tf import data

    parts = {"image": [], "mask": [], "child": [], "parent": []}
    for batch in data.eval_dataset(data_cfg, image_size, batch_size, split, classes):
        for k in parts:
            if k in batch:
                parts[k].append(batch[k].numpy())
    out = {k: np.concatenate(v) for k, v in parts.items() if v}
    if "mask" in out:
        out["mask"] = out["mask"][..., 0] > 0.5
    return out


def train_feature_classifier(cfg: Config, out_path: str, epochs: int = CLASSIFIER_EPOCHS,
                             train: dict | None = None) -> dict:
    """Fine-tune the small CNN of `onegan_tf.classifier` on the training split's crops and child labels.

    train: `collect(cfg.data, image_size, "object")` when the caller already has it.
    """
    import keras

    from onegan_tf.classifier import build_classifier

    train = collect(cfg.data, cfg.model.image_size, "object") if train is None else train
    if np.any(train["child"] < 0):
        raise ValueError(f"dataset {cfg.data.dataset!r} has no child labels to fine-tune a feature network on")
    keras.utils.set_random_seed(cfg.train.seed)
    model = build_classifier(cfg.model.n_child, "small_cnn", "none", cfg.model.image_size)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    n_val = max(1, len(train["child"]) // 10)
    history = model.fit(train["image"][n_val:], train["child"][n_val:], batch_size=64, epochs=epochs, verbose=0,
                        validation_data=(train["image"][:n_val], train["child"][:n_val]))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    model.save(out_path)
    return {"path": out_path, "val_accuracy": float(history.history["val_accuracy"][-1]),
            "train_images": int(len(train["child"]) - n_val)}


GENERATION_METRICS = ("fid", "is", "cfid", "cis")


def finalize_run(cfg: Config, model=None, step: int | None = None, raw_model=None, segmenter=None) -> dict:
    """Evaluate the finished run of `cfg`, compare with the baselines, export it and write report.md.

    model: the run's model with its --generator_weights (loaded from the checkpoint when None); raw_model:
    the same with the raw V_*, G_* when model holds the EMA's; segmenter: the distilled segmenter, if any.
    """
    from onegan_tf import baselines, evaluate, export
    from onegan_tf.files import write_json

    tc, mc = cfg.train, cfg.model
    run_dir = tc.run_dir
    out_dir = os.path.join(run_dir, "eval")
    if model is None:
        from onegan_tf.checkpoint import load_run

        run = load_run(run_dir)
        model, step, segmenter = run.model, run.step, run.segmenter
        if run.weights == "ema":
            raw_model = load_run(run_dir, weights="raw").model
    t0 = time.time()
    metrics = [m.strip() for m in tc.final_eval.split(",") if m.strip()]
    if segmenter is not None and "segmentation" in metrics and "segmentation_distilled" not in metrics:
        metrics.append("segmentation_distilled")
    classifier = None
    feature_net = tc.final_feature_net
    # The training split is read once: it trains the feature network and gives the ellipse baseline its area.
    train_split = collect(cfg.data, mc.image_size, "object")
    if feature_net == "finetuned" and any(m in metrics for m in ("fid", "is", "cfid", "cis")):
        classifier = train_feature_classifier(cfg, os.path.join(out_dir, "feature_classifier.keras"),
                                              train=train_split)
        feature_net = classifier["path"]
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
    base = (baselines.all_baselines(real["image"], real["mask"], real.get("child"), real.get("parent"), area,
                                    mc.n_child, mc.n_parent, tc.seed) if "mask" in real else {})
    export_path = None
    if tc.final_export:
        export_path = export.export_saved_model(model, os.path.join(run_dir, "export"), "onegan",
                                                step=step or 0, segmenter=segmenter)
    summary = {"report": report, "raw_generation": raw_report and raw_report["metrics"], "baselines": base,
               "classifier": classifier, "export": export_path, "wall_s": round(time.time() - t0, 1)}
    write_json(os.path.join(out_dir, "final.json"), summary)
    with open(os.path.join(run_dir, "report.md"), "w") as f:
        f.write(markdown(cfg, summary))
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
                          ("all_foreground", "centred_ellipse", "border_colour") if name in base)
            which = f", {label}" if len(routes) > 1 else ""
            rows.append(("segmentation", f"mask {key.upper()} (per image{which})", _fmt(m[metric][key]), b))
    if len(routes) > 1:
        enc, dist = (m[k]["images_per_s"] for k, _ in routes)
        rows.append(("segmentation", "images/s, reconstruction path (3 encoders, 2 generators)", f"{enc:.0f}", ""))
        rows.append(("segmentation", "images/s, distilled segmenter (one U-Net)",
                     f"{dist:.0f} ({dist / enc:.1f}x)", ""))
    if "clustering" in m:
        c = m["clustering"]
        for level, k in (("child", "kmeans_child"), ("parent", "kmeans_parent")):
            for key in ("acc", "nmi"):
                b = f"k-means on pixels (k={base[k]['k']}) {_fmt(base[k][key])}" if k in base else ""
                if level == "parent" and key == "acc" and k in base:
                    b += f"; chance {_fmt(base[k]['chance_acc'])}"
                rows.append(("clustering", f"{level} {key.upper()}", _fmt(c[f'{level}_{key}']), b))
    ema = report.get("generator_weights") == "ema"
    for name, key, label in (("fid", "fid", "FID ↓"), ("is", "is", "IS ↑"), ("cfid", "cfid", "CFID ↓"),
                             ("cis", "cis", "CIS ↑")):
        if name in m:
            rows.append(("generation", label + (" (EMA weights)" if ema else ""), _fmt(m[name][key], 2), ""))
        if raw_generation and name in raw_generation:
            rows.append(("generation", f"{label} (raw weights)", _fmt(raw_generation[name][key], 2), ""))
    return rows


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
    lines.append("")
    if "border_colour" in base:
        lines.append(f"The border-colour baseline uses the best threshold on these very images "
                     f"({base['border_colour']['threshold']:.2f}): an optimistic bound. The ellipse is a centred disc "
                     f"with the training split's mean object area ({base['centred_ellipse']['area_fraction']:.3f}).")
    if summary.get("classifier"):
        c = summary["classifier"]
        lines.append(f"Generation metrics use a small CNN fine-tuned on the training split's child labels "
                     f"({c['train_images']} images, validation accuracy {c['val_accuracy']:.3f}): `{c['path']}`.")
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
    lines += ["## Files", "", f"- metrics: `eval/report.json`, with baselines: `eval/final.json`",
              f"- checkpoint: `{report.get('checkpoint')}`"]
    if summary.get("export"):
        lines.append(f"- SavedModel for TF Serving: `{os.path.relpath(summary['export'], cfg.train.run_dir)}`")
    lines.append(f"- TensorBoard: `tensorboard --logdir {os.path.join(cfg.train.run_dir, 'tb')}`")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """`python -m onegan_tf.report --run_dir=RUN`: (re)do the end of a finished run with its own settings."""
    import sys

    from onegan_tf.checkpoint import load_config
    from onegan_tf.flags import parse_private

    def define(fv):
        from absl import flags

        flags.DEFINE_string("run_dir", None, "Run directory written by `python -m onegan_tf.train`.", flag_values=fv)
        flags.DEFINE_string("metrics", None, "Override the run's --final_eval (comma-separated metrics).",
                            flag_values=fv)

    fv = parse_private(sys.argv if argv is None else argv, define, ["run_dir"],
                       "python -m onegan_tf.report --run_dir=RUN [--metrics=segmentation,clustering,...]")
    if fv is None:
        return 2
    cfg = load_config(fv.run_dir)
    if fv.metrics is not None or cfg.train.run_dir != fv.run_dir:
        import dataclasses

        train = dataclasses.replace(cfg.train, run_dir=fv.run_dir,
                                    final_eval=cfg.train.final_eval if fv.metrics is None else fv.metrics)
        cfg = dataclasses.replace(cfg, train=train)
    summary = finalize_run(cfg)
    print(f"wrote {os.path.join(fv.run_dir, 'report.md')} ({summary['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
