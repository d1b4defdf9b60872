"""Atomic file writes: a failed or killed run never leaves a half-written file in place of a good one."""

from __future__ import annotations

import json
import os
import tempfile


def write_json(path: str, obj) -> None:
    """Write `obj` as JSON to a temporary file beside `path`, then rename it over `path`."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def save_keras(model, path: str) -> None:
    """Save a Keras model to a temporary `.keras` file beside `path`, then rename it over `path`."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
