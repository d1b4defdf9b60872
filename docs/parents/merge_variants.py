"""Which label-free merge of N_P' > families parent codes to keep: every variant tried, on the runs given.

Each variant groups E_p's codes into as many groups as there are families and is scored by the parent NMI of
E_p's merged clusters on the run's evaluated split, beside the target (k-means on pixels + 0.10):
- `outline`: the merge by generated canonical outlines, dihedral distance (`parent_readout.merge_groups`);
- `hu{4,7}_real_{mean,median}_{average,ward}`: the first 4 or 7 Hu moments of each real image's encoder mask,
  their mean or median over the images E_p assigns to a code, `average` or `ward` linkage
  (`onegan_tf.metrics.shape_merge.merge_codes`; `hu4_real_median_average` is the one the end-of-run report
  and `parent_readout.py` keep);
- `hu{4,7}_generated_{average,ward}`: the Hu moments of each code's generated canonical outline;
- `hu{4,7}_real_mean_mask_{average,ward}`: the Hu moments of the mean of the thresholded encoder masks
  E_p assigns to a code (placed, so not pose-invariant; a reference);
- `canonical_real_dihedral`: the mean canonical-frame mask (G_fg2 before the pose warp, on the reconstruction
  path) of the real images E_p assigns to a code, merged as the outlines are.
The variants were run on the runs of `merge_variants.json` in this order and the keeper chosen from them;
a choice made this way fits those runs, which is why later runs are scored by `parent_readout.py` alone.

usage: PYTHONPATH=. python docs/parents/merge_variants.py --run_dirs=RUN,RUN,... --out=FILE.json
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags
from evidence import json_main
from parent_readout import TARGET_MARGIN, canonical_outlines, many_to_one, merge_groups, outline_distances

from onegan_tf import baselines
from onegan_tf.checkpoint import load_run
from onegan_tf.metrics.clustering import normalized_mutual_info
from onegan_tf.metrics.shape_merge import hu_moments, merge_codes
from onegan_tf.report import collect

LINKAGES = ("average", "ward")


def per_code(features: np.ndarray, n_codes: int, families: int, method: str) -> np.ndarray:
    """merge_codes on one feature row per code (the statistic of one row is the row)."""
    return merge_codes(features, np.arange(n_codes), n_codes, families, np.mean, method)


def variants(run_dir: str, draws: int) -> dict:
    run = load_run(run_dir)
    model, cfg = run.model, run.config
    mc = cfg.model
    real = collect(cfg.data, mc.image_size, cfg.train.final_split, classes=(mc.n_child, mc.n_parent))
    family = real["parent"]
    nf = int(family.max()) + 1
    codes, masks, canonical = [], [], []
    for i in range(0, len(family), 100):
        r = model.reconstruct(tf.constant(real["image"][i:i + 100]))
        codes.append(r["pred_parent"].numpy())
        masks.append(r["I_m_hat"].numpy()[..., 0])
        canonical.append(model.G_fg2.draw((model.G_fg1(r["A_fgmix"]), r["v_pmix"], r["v_cmix"]))["I_m"]
                         .numpy()[..., 0])
    codes, masks, canonical = np.concatenate(codes), np.concatenate(masks), np.concatenate(canonical)
    used = np.unique(codes)
    outlines = canonical_outlines(model, cfg, draws, cfg.train.seed)
    mean_masks = np.stack([(masks[codes == c] > 0.5).mean(0) if c in used else np.zeros(masks.shape[1:])
                           for c in range(mc.n_parent)])
    hu, hu_outlines, hu_mean_masks = hu_moments(masks), hu_moments(outlines), hu_moments(mean_masks)
    groups = {"outline": merge_groups(outline_distances(outlines), nf)}
    for k in (4, 7):
        for method in LINKAGES:
            for name, stat in (("mean", np.mean), ("median", np.median)):
                groups[f"hu{k}_real_{name}_{method}"] = merge_codes(hu[:, :k], codes, mc.n_parent, nf, stat, method)
            groups[f"hu{k}_generated_{method}"] = per_code(hu_outlines[:, :k], mc.n_parent, nf, method)
            groups[f"hu{k}_real_mean_mask_{method}"] = per_code(hu_mean_masks[:, :k], mc.n_parent, nf, method)
    mean_canonical = np.stack([canonical[codes == c].mean(0) for c in used])
    dihedral = np.full(mc.n_parent, nf)
    dihedral[used] = merge_groups(outline_distances(mean_canonical), nf)
    groups["canonical_real_dihedral"] = dihedral
    kmeans = baselines.kmeans_pixels(real["image"], family, nf, cfg.train.seed)["nmi"]
    return {"target_nmi": kmeans + TARGET_MARGIN,
            "label_mapped_ceiling": normalized_mutual_info(many_to_one(codes, family), family),
            "nmi": {name: normalized_mutual_info(g[codes], family) for name, g in groups.items()}}


def merge_variants(run_dirs: list[str], draws: int) -> dict:
    runs = {}
    for run_dir in run_dirs:
        runs[run_dir] = variants(run_dir, draws)
        print(run_dir, {k: round(v, 3) for k, v in runs[run_dir]["nmi"].items()}, flush=True)
    names = next(iter(runs.values()))["nmi"]
    return {"runs": runs, "reached_target": {n: sum(r["nmi"][n] >= r["target_nmi"] for r in runs.values())
                                             for n in names}, "of_runs": len(runs)}


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_list("run_dirs", None, "Trained runs with more parent codes than families.", flag_values=fv)
    flags.DEFINE_string("out", None, "JSON file to write.", flag_values=fv)
    flags.DEFINE_integer("draws", 64, "Samples of z averaged into each generated outline.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    return json_main(argv, define_flags, __doc__, ("run_dirs", "out"),
                     lambda fv: merge_variants(fv.run_dirs, fv.draws))


if __name__ == "__main__":
    sys.exit(main())
