"""The metric registry: a name maps to a function `fn(ctx) -> dict[str, float]` (docs/design.md §7).

Modelled on StyleGAN2-ADA's `metric_main.py`: each metric module registers its functions with
`@register("name")`; the evaluation driver (`onegan_tf.evaluate`) builds one `EvalContext` and calls
`compute(names, ctx)`. The names are the public API (flags and result files use them):

    segmentation  iou, dice, iou_dataset, dice_dataset, n_images, images_per_s   (the reconstruction path)
    segmentation_distilled   the same, for the distilled segmenter (`ctx.segment`)
    clustering    child_acc, child_nmi, parent_acc, parent_nmi, n_images; with more parent codes than
                  parent classes also parent_merged_acc, parent_merged_nmi, parent_classes
    fid           fid, n_real, n_generated
    is            is, is_std, n_generated, splits
    cfid          cfid, n_classes, n_real, n_generated
    cis           cis, n_classes, n_generated

Metrics stream over `ctx.real_batches()` and never hold the images of the dataset in memory; they keep
per-image integers (labels, cluster ids) and, where a metric needs them, per-image feature vectors (CFID).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Protocol

import numpy as np


class MetricError(ValueError):
    """A metric cannot run on this model/dataset; the message names the metric and what is missing."""


class FeatureNetLike(Protocol):
    """What the inception-based metrics call: images in [-1, 1] -> (features [B, D], probs [B, K])."""

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class EvalContext(Protocol):
    """What the evaluation driver hands every metric.

    Attributes:
      n_child, n_parent: N_C and N_P of the model.
      has_masks: the evaluation dataset has ground-truth masks (needed by `segmentation`).
      has_labels: the evaluation dataset has child/parent labels (needed by `clustering`, `cfid`, `cis`).
      num_generated: how many images `fid` and `is` generate.
      progress: wraps an iterable with a progress bar, `progress(iterable, description)`; may be identity.

    Optional attributes, read with a default when absent:
      dataset_name (str, default "the evaluation dataset"): used in error messages.
      batch_size (int, default 50): batch size of the `generate` calls of `fid` and `is`.
      seed (int, default 0): seeds the child classes and the `generate`/`generate_like` calls.

    Methods (all take and return numpy):
      real_batches(): a fresh iterable over the evaluation set, each item a dict with
        'image' [B, H, W, 3] float32 in [-1, 1], 'child' [B] int, 'parent' [B] int (when has_labels),
        'mask' [B, H, W] float32 in [0, 1] (when has_masks). Called once per metric, so it must restart.
      reconstruct(images): the reconstruction path at the inference betas; a dict with at least
        'I_m' [B, H, W, 1] in [0, 1], 'e_c_logits' [B, N_C], 'e_p_logits' [B, N_P].
      generate(child, seed): the generation path from child classes [B] int; a dict with 'I' [B, H, W, 3].
      generate_like(images, seed): generation from the codes encoded from real images; a dict with 'I'.
      segment(images): the distilled segmenter's I_m [B, H, W, 1] (optional; `segmentation_distilled`).
      feature_net(): the classifier of the inception metrics (see `metrics.inception.feature_network`).
    """

    n_child: int
    n_parent: int
    has_masks: bool
    has_labels: bool
    num_generated: int
    progress: Callable[[Iterable, str], Iterable]

    def real_batches(self) -> Iterable[dict]: ...

    def reconstruct(self, images: np.ndarray) -> dict: ...

    def generate(self, child: np.ndarray, seed: int) -> dict: ...

    def generate_like(self, images: np.ndarray, seed: int) -> dict: ...

    def feature_net(self) -> FeatureNetLike: ...

    # Optional: the distilled segmenter, images -> I_m [B, H, W, 1]; None when the run has none.
    segment: Callable[[np.ndarray], np.ndarray] | None


MetricFn = Callable[[EvalContext], dict]


@dataclasses.dataclass(frozen=True)
class Needs:
    """What a metric needs of the data and the context, declared where it is registered."""
    masks: bool = False       # ground-truth masks
    labels: bool = False      # child/parent class labels
    min_generated: int = 0    # ctx.num_generated at least this


_METRICS: dict[str, MetricFn] = {}
_NEEDS: dict[str, Needs] = {}


def register(name: str, *, masks: bool = False, labels: bool = False,
             min_generated: int = 0) -> Callable[[MetricFn], MetricFn]:
    """Decorator: make `fn(ctx) -> dict[str, float]` available as metric `name`, with what it needs
    (checked by `check` before any metric runs)."""

    def decorate(fn: MetricFn) -> MetricFn:
        if name in _METRICS:
            raise ValueError(f"metric {name!r} is registered twice ({_METRICS[name].__module__} and {fn.__module__})")
        _METRICS[name] = fn
        _NEEDS[name] = Needs(masks, labels, min_generated)
        return fn

    return decorate


def available() -> list[str]:
    """The registered metric names, sorted."""
    return sorted(_METRICS)


def validate(names: Iterable[str]) -> list[str]:
    """Check every name before anything runs; an unknown name raises a MetricError listing the known ones."""
    names = list(names)
    unknown = [n for n in names if n not in _METRICS]
    if unknown:
        raise MetricError(f"unknown metric(s) {', '.join(map(repr, unknown))}; known metrics: {', '.join(available())}")
    return names


def check(names: Iterable[str], ctx: Any, num_generated_name: str = "num_generated") -> list[str]:
    """Validate the names and each metric's `Needs` against `ctx` (has_masks, has_labels, num_generated,
    dataset_name) before anything runs; the first unmet need raises a MetricError naming it."""
    names = validate(names)
    for name in names:
        needs = _NEEDS[name]
        require(ctx, name, masks=needs.masks, labels=needs.labels)
        if int(ctx.num_generated) < needs.min_generated:
            raise MetricError(f"metric {name!r} needs {num_generated_name} >= {needs.min_generated}; "
                              f"got {ctx.num_generated}")
    return names


def compute(names: Iterable[str], ctx: EvalContext) -> dict[str, dict[str, float]]:
    """Run the named metrics in order; returns {name: {key: value}}. Every need is checked first."""
    names = check(names, ctx)
    return {name: _METRICS[name](ctx) for name in names}


# Helpers shared by the metric modules: reading the optional context attributes and the requirement checks.

def dataset_name(ctx: Any) -> str:
    name = getattr(ctx, "dataset_name", None)
    return f"dataset {name!r}" if name else "the evaluation dataset"


def require(ctx: Any, metric: str, *, masks: bool = False, labels: bool = False) -> None:
    """Raise a MetricError naming what `metric` needs and the dataset lacks."""
    if masks and not ctx.has_masks:
        raise MetricError(f"metric {metric!r} needs ground-truth masks; {dataset_name(ctx)} has none "
                          "(give the dataset a mask folder, or drop this metric)")
    if labels and not ctx.has_labels:
        raise MetricError(f"metric {metric!r} needs child/parent class labels; {dataset_name(ctx)} has none "
                          "(use a labelled dataset, or drop this metric)")


def require_keys(out: dict, keys: Iterable[str], metric: str, source: str) -> None:
    missing = [k for k in keys if k not in out]
    if missing:
        raise MetricError(f"metric {metric!r} needs {', '.join(map(repr, missing))} from ctx.{source}(); "
                          f"it returned only {', '.join(map(repr, sorted(out)))}")


def progress(ctx: Any, iterable: Iterable, description: str) -> Iterable:
    wrap = getattr(ctx, "progress", None)
    return wrap(iterable, description) if wrap is not None else iterable
