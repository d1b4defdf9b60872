"""Data: sources (CUB, TFDS, folder, synthetic) → protocol (80/20 split, crops, background patches) →
tf.data pipelines (docs/design.md §6).

The training loop calls `train_streams`, evaluation calls `eval_dataset`, and `describe` reports what a
configuration yields. Imported lazily so that `onegan_tf.data.synthetic` and the sources load without
TensorFlow.
"""

__all__ = ["train_streams", "eval_dataset", "describe"]


def __getattr__(name):
    if name in __all__:
        from onegan_tf.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'onegan_tf.data' has no attribute {name!r}")
