"""`onegan_tf.files`: every writer's atomic write keeps the old file when the new one fails half-way."""

from __future__ import annotations

import os

import pytest

from onegan_tf import files


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "report.md"
    files.write_text(str(path), "good")

    def half_then_fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        files.atomic_write(str(path), half_then_fail)
    assert path.read_text() == "good" and os.listdir(tmp_path) == ["report.md"]


def test_writers_create_the_folder_and_replace_the_file(tmp_path):
    path = tmp_path / "new" / "results.json"
    files.write_json(str(path), {"b": 1, "a": 2})
    files.write_json(str(path), {"b": 3})
    assert path.read_text() == '{\n  "b": 3\n}' and os.listdir(path.parent) == ["results.json"]
