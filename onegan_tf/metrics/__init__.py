"""Evaluation metrics of docs/design.md §7 behind a registry (`compute`, `available`; see `registry`).

Importing this package registers every metric: segmentation, clustering, fid, is, cfid, cis.
"""

from onegan_tf.metrics import clustering, inception, segmentation  # noqa: F401  (registers the metrics)
from onegan_tf.metrics.inception import FeatureNet, feature_network
from onegan_tf.metrics.registry import EvalContext, MetricError, available, compute, register, validate

__all__ = ["EvalContext", "FeatureNet", "MetricError", "available", "compute", "feature_network", "register",
           "validate"]
