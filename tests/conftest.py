"""Test-wide settings: quiet TensorFlow, a deterministic CPU, and the `slow` marker; fixtures shared across
modules (each made once per session: the costly states of the suite); the two streams CI runs side by side."""

import os
import pathlib

import pytest
from xdist.scheduler import LoadScopeScheduling

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="session")
def reference_run_dir():
    """tests/tiny.py's reference run (one uninterrupted training subprocess of RUN_FLAGS), made once."""
    from tiny import reference_run

    return reference_run()


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


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """test_export's run directory (`make_run`) exported once: the SavedModel and the `.keras` files, shared
    by the export tests and the serving bench, and loaded once in this process (`loaded`); exporting traces
    every signature, loading optimises each, the costly parts."""
    import keras
    import tensorflow as tf

    from onegan_tf import export
    from tests.test_export import STEP, make_run

    root = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    written = make_run(str(root / "run"))
    model, step = export.load_model(str(root / "run"))
    assert step == STEP
    path = export.export_saved_model(model, str(root / "serving"), "onegan", step=step)
    assert path == str(root / "serving" / "onegan" / str(STEP))
    export.export_keras(model, str(root / "keras"))
    return {"root": root, "model": model, "written": written, "saved_model": path, "keras_dir": str(root / "keras"),
            "loaded": tf.saved_model.load(path)}


@pytest.fixture(scope="session")
def keras_files(tmp_path_factory):
    """test_serialization's `save_every_network` once: its TensorFlow loader and test_backends' other backends
    read the same files. (directory, expected outputs, classes)."""
    from tests.test_serialization import save_every_network

    directory = tmp_path_factory.mktemp("keras_files")
    return directory, *save_every_network(directory)


# CI's two-CPU machine runs the suite as two streams, one pytest-xdist worker each (`pytest -n 2`). On a machine
# of two CPUs runtime.py gives TensorFlow one intra-op thread, so one pytest process keeps one core busy; two
# streams of equal CPU time halve the suite's time. A session fixture above is built once in each worker that
# runs one of its users, so every user of one fixture is in one stream (tests/test_ci.py checks it): the
# SavedModel export's users (test_export, test_bench) are here, beside the two end-to-end runs (the shortened
# demo, distillation), the mixed-precision steps and the evaluation runs, which balance the streams' CPU time;
# the reference run's, the full-size trainer's and the `.keras` files' users are in the other stream, with
# every file not named here.
END_TO_END_STREAM = ("test_demo.py", "test_distill.py", "test_export.py", "test_bench.py", "test_precision.py",
                     "test_evaluate.py")
STREAMS = ("end-to-end", "units-and-training")


def stream_of(nodeid: str) -> str:
    """The stream that runs the test `nodeid` (`tests/test_x.py::test_y[...]`)."""
    return STREAMS[0] if pathlib.PurePosixPath(nodeid.split("::", 1)[0]).name in END_TO_END_STREAM else STREAMS[1]


class StreamScheduling(LoadScopeScheduling):
    """pytest-xdist's scope scheduler with one scope per stream: each worker is sent one whole stream, in file
    order. (xdist's own `--dist loadgroup` marks a group by renaming the test's node id, which pytest 9.2's
    read-only `nodeid` ignores, so it spreads a group over the workers.)"""

    def _split_scope(self, nodeid: str) -> str:
        return stream_of(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Every `-n` run is split into the streams, whatever `--dist` says."""
    return StreamScheduling(config, log)
