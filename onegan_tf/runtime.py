"""Process-level start-up settings: what the process sets before TensorFlow is imported.

TensorFlow reads its runtime switches (thread pools, allocator, oneDNN primitive caching) from the environment
once, when it is loaded, and glibc malloc's thresholds act on every allocation after they are set; so these
settings live here, applied by `onegan_tf/__init__.py` before any module of the package imports TensorFlow.
Every entry point (`python -m onegan_tf.train`, `.bench`, ...) and every library user gets them alike.

- `ENV_DEFAULTS` are set where the user set nothing: a variable the user exported wins. On a machine of at
  most two usable CPUs (the one they were measured on): TensorFlow's intra-op pool of one thread and an
  inter-op pool of two (`env_defaults`); elsewhere TensorFlow sizes its pools itself.
- glibc malloc without mmap/trim thresholds (`tune_malloc`), unless the user set either threshold through
  glibc's own `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` (glibc has applied those already).
- `ONEGAN_TF_RUNTIME=off` skips all of it: TensorFlow's and glibc's own defaults.

Which settings are here, and which were measured and left out, is in BUILD.md ("Process-level settings").
"""

from __future__ import annotations

import ctypes
import os


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def env_defaults(cpus: int) -> dict[str, str]:
    """The environment defaults for a process that may use `cpus` CPUs.

    Only settings that measured faster on the training step are here (BUILD.md, "Process-level settings").
    A step is hundreds of small ops in chains that can run side by side (the discriminator updates, the
    reconstruction paths): on two cores, two ops at once on one thread each beat one op at a time split over
    both, whose threads spend more on synchronising than they save. On more cores that trade-off was not
    measured, so TensorFlow's own pool sizes stay.
    """
    if cpus <= 2:
        return {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2"}
    return {}


ENV_DEFAULTS: dict[str, str] = env_defaults(usable_cpus())

SWITCH = "ONEGAN_TF_RUNTIME"
GLIBC_THRESHOLDS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
# <malloc.h>: mallopt's parameter numbers.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# mallopt takes an int: 2 GiB - 1 is the largest threshold it accepts.
NO_THRESHOLD = 2**31 - 1


def tune_malloc() -> bool:
    """glibc malloc with no mmap threshold and no heap trimming below 2 GiB; False where it is not glibc.

    A training step allocates and frees the same large activation buffers every step. By default glibc
    serves blocks above its (dynamic) mmap threshold with a fresh mmap, and trims the heap top back to the
    kernel after frees: every step then pays the system calls and the page faults of touching new pages.
    Without the thresholds the freed blocks are reused from the heap.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, NO_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, NO_THRESHOLD))


def apply(environ=None) -> dict:
    """Apply the start-up settings to `environ` (default os.environ) and this process' malloc.

    Returns what was applied: {"env": {name: value set here}, "malloc_tuned": bool}; nothing when
    `ONEGAN_TF_RUNTIME=off`. Must run before TensorFlow is imported for the variables to take effect.
    """
    environ = os.environ if environ is None else environ
    if environ.get(SWITCH, "on").lower() in ("off", "0", "false"):
        return {"env": {}, "malloc_tuned": False}
    env = {}
    for name, value in ENV_DEFAULTS.items():
        if name not in environ:
            environ[name] = value
            env[name] = value
    tuned = not any(name in environ for name in GLIBC_THRESHOLDS) and tune_malloc()
    return {"env": env, "malloc_tuned": tuned}


APPLIED: dict = {}
