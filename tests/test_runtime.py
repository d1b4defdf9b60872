"""`onegan_tf.runtime`: the process' start-up settings, applied on importing the package, before TensorFlow."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

from onegan_tf import runtime
from tests.tiny import REPO

LARGE = 64 * 2**20  # above glibc's default mmap threshold (dynamic, at most 32 MiB on 64-bit)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _large_block_is_mmapped() -> bool:
    """Whether glibc serves a LARGE malloc with its own mmap (mallinfo2's count of mmapped blocks grows)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    before = libc.mallinfo2().hblks
    block = libc.malloc(LARGE)
    during = libc.mallinfo2().hblks
    libc.free(block)
    return during > before


def _in_fresh_process(env: dict) -> dict:
    """Import onegan_tf in a new interpreter with `env` added; what it applied, the environment it left, and
    whether TensorFlow had been imported by then."""
    code = ("import json, os, sys; import onegan_tf; from onegan_tf import runtime; "
            "tf_loaded = 'tensorflow' in sys.modules; "
            "from tests.test_runtime import _large_block_is_mmapped; "
            "print(json.dumps({'applied': runtime.APPLIED, 'tf_loaded': tf_loaded, "
            "'mmapped': _large_block_is_mmapped(), "
            "'env': {k: os.environ.get(k) for k in runtime.ENV_DEFAULTS}}))")
    base = {k: v for k, v in os.environ.items() if k not in runtime.ENV_DEFAULTS and k != runtime.SWITCH
            and k not in runtime.GLIBC_THRESHOLDS}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**base, "PYTHONPATH": REPO, **env},
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_importing_the_package_applies_the_defaults_before_tensorflow():
    got = _in_fresh_process({})
    assert not got["tf_loaded"]
    assert got["applied"]["malloc_tuned"]
    assert not got["mmapped"], "a large block still comes from mmap: the mmap threshold was not lifted"
    assert got["env"] == runtime.ENV_DEFAULTS


def test_off_switch_leaves_tensorflow_and_glibc_defaults():
    got = _in_fresh_process({runtime.SWITCH: "off"})
    assert got["applied"] == {"env": {}, "malloc_tuned": False}
    assert got["mmapped"]
    assert all(got["env"][k] is None for k in runtime.ENV_DEFAULTS)


def test_a_glibc_threshold_set_by_the_user_wins():
    got = _in_fresh_process({"MALLOC_MMAP_THRESHOLD_": str(2**20)})
    assert not got["applied"]["malloc_tuned"]
    assert got["mmapped"]


def test_environment_defaults_are_set_only_where_the_user_set_nothing(monkeypatch):
    monkeypatch.setattr(runtime, "ENV_DEFAULTS", {"PROBE_A": "1", "PROBE_B": "2"})
    environ = {"PROBE_B": "user"}
    applied = runtime.apply(environ)
    assert environ == {"PROBE_A": "1", "PROBE_B": "user"}
    assert applied["env"] == {"PROBE_A": "1"}
    environ = {runtime.SWITCH: "off"}
    assert runtime.apply(environ)["env"] == {} and environ == {runtime.SWITCH: "off"}


def test_the_thread_pools_are_set_only_on_the_two_core_machine_they_were_measured_on():
    assert runtime.env_defaults(2) == {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2"}
    assert runtime.env_defaults(16) == {}


def test_a_thread_pool_size_set_by_the_user_wins(monkeypatch):
    monkeypatch.setattr(runtime, "ENV_DEFAULTS", runtime.env_defaults(2))
    environ = {"TF_NUM_INTRAOP_THREADS": "2"}
    runtime.apply(environ)
    assert environ == {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2"}


def test_the_ceiling_conv_uses_every_core_when_the_intra_op_pool_is_smaller(monkeypatch):
    """One convolution on a one-thread intra-op pool uses one core: the ceiling runs as concurrent slices."""
    from onegan_tf import machine

    monkeypatch.setattr(runtime, "usable_cpus", lambda: 2)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    assert machine.concurrent_slices(20) == 2
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    assert machine.concurrent_slices(20) == 1
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert machine.concurrent_slices(20) == 1
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    record = machine.ceiling_conv(3, 8, 4, 4, 3, steps=1, warmup=1)  # slices of 2 and 1
    assert record["concurrent_slices"] == 2
    assert record["forward_flops"] == 2 * 9 * 4 * 4 * 8 * 8 * 3 and record["flop_per_s"] > 0
