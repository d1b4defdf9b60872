"""Test-wide settings: quiet TensorFlow, a deterministic CPU, and the `slow` marker; fixtures shared across
modules."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="session")
def full_size_trainer():
    """One full-size trainer (ModelConfig() defaults: 128x128, paper widths, 200/20 classes; batch 2, seed 0)
    shared by the full-size checks: building the 144M-parameter model, its clones and optimiser states is
    the costly part of each. Tests may train it: none depends on its weights' values."""
    import keras  # TensorFlow only after the environment above is set

    from onegan_tf.config import Config, TrainConfig
    from onegan_tf.trainer import OneGANTrainer

    keras.utils.set_random_seed(0)
    return OneGANTrainer(Config(train=TrainConfig(batch_size=2)))
