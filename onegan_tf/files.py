"""Atomic file writes: a failed or killed run never leaves a half-written file in place of a good one.

Every writer of the package goes through `atomic_write`: the content is written to a temporary file beside
the target (same folder, so the rename cannot cross file systems) and renamed over it only once complete.
Whole folders (a SavedModel version, a dataset) are written the same way by their writers: a temporary
dot-folder renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Callable


def atomic_write(path: str, write: Callable[[str], None], suffix: str = "") -> str:
    """Call `write(tmp)` on a temporary file beside `path` (ending in `suffix`, for writers that read the file
    type from the name), then rename it over `path`; the temporary file is removed if `write` fails."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_text(path: str, text: str, newline: str | None = None) -> str:
    """Write `text` to `path` atomically."""
    def write(tmp):
        with open(tmp, "w", newline=newline) as f:
            f.write(text)
    return atomic_write(path, write)


def write_bytes(path: str, data: bytes) -> str:
    """Write `data` to `path` atomically."""
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, write)


def write_json(path: str, obj, sort_keys: bool = True) -> str:
    """Write `obj` as indented JSON to `path` atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys))


def save_keras(model, path: str) -> str:
    """Save a Keras model to `path` (a `.keras` file) atomically."""
    return atomic_write(path, model.save, suffix=".keras")
