"""docs/design.md stays true: its parameter tables match the built networks, the modules, names and files it
points at exist, and every "docs/design.md §n" cited in the repository names one of its sections."""

import importlib
import os
import re
import types

import pytest

from onegan_tf import networks
from onegan_tf.config import ModelConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESIGN = os.path.join(REPO, "docs", "design.md")
SECTIONS = {1: "Sizes", 2: "Building blocks", 3: "Networks at full size", 4: "Mixup", 5: "One training iteration",
            6: "Data protocol", 7: "Evaluation protocol"}


def _text():
    with open(DESIGN, encoding="utf-8") as f:
        return f.read()


def _section(text, n):
    """The body of section §n (up to the next '## ' heading)."""
    match = re.search(rf"^## §{n} .*?(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/design.md has no section '## §{n} ...'"
    return match.group(0)


# Where a class named in the document lives; names of other libraries are not checked.
CLASS_MODULES = ("model", "trainer", "config", "networks", "layers", "adam")
OTHER_LIBRARIES = ("keras", "tf", "np")
# `name.ending` spans that are file names (of a dataset's layout, a run directory), not Python names.
FILE_ENDINGS = ("py", "md", "json", "cfg", "txt", "png", "jpg", "keras", "npz")


def _resolve(name):
    """The onegan_tf module `name` (also under data/ and metrics/), or a class of that name; None if neither."""
    for package in ("onegan_tf", "onegan_tf.data", "onegan_tf.metrics"):
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError:
            pass
    for module in CLASS_MODULES:
        found = getattr(importlib.import_module(f"onegan_tf.{module}"), name, None)
        if found is not None:
            return found
    return None


def _attribute(obj, name):
    """obj.name, or the submodule obj.name of a package that has not been imported yet; None if neither."""
    found = getattr(obj, name, None)
    if found is None and isinstance(obj, types.ModuleType):
        try:
            found = importlib.import_module(f"{obj.__name__}.{name}")
        except ModuleNotFoundError:
            found = None
    return found


def _count(cell):
    return int(cell.strip().strip("*").replace(",", ""))


def test_design_document_keeps_the_seven_numbered_sections_in_order():
    headings = re.findall(r"^## §(\d+) (.*)$", _text(), re.MULTILINE)
    numbered = [(int(n), title) for n, title in headings]
    assert [n for n, _ in numbered] == sorted(SECTIONS)
    for n, title in numbered:
        assert title.startswith(SECTIONS[n]), f"§{n} is titled {title!r}; code cites it as {SECTIONS[n]!r}"


def test_every_citation_of_the_design_document_names_an_existing_section():
    existing = {int(n) for n in re.findall(r"^## §(\d+) ", _text(), re.MULTILINE)}
    cited = {}
    for root, dirs, files in os.walk(REPO):
        # Hidden folders (.venv, .git), caches, and at the top the run directories and the datasets.
        top = root == REPO
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"
                   and not (top and d in ("runs", "data"))]
        for name in files:
            if not name.endswith((".py", ".md", ".cfg", ".toml")):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                for n in re.findall(r"design\.md §(\d+)", f.read()):
                    cited.setdefault(int(n), os.path.relpath(path, REPO))
    missing = {n: where for n, where in cited.items() if n not in existing}
    assert not missing, f"citations of sections docs/design.md does not have (section: first file): {missing}"


def test_every_module_name_and_file_the_document_points_at_exists():
    """`module.name`, `Class.method` and `path/file.py` references; a rename must update the document."""
    text = _text()
    missing = []
    for path in set(re.findall(r"`([\w./-]+\.(?:py|md|json|cfg))`", text)):
        if ("/" in path or path.endswith(".py")) and not any(
                os.path.exists(os.path.join(REPO, prefix, path)) for prefix in ("", "onegan_tf", "onegan_tf/data")):
            missing.append(path)
    for ref in set(re.findall(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)`", text)):
        first, *attrs = ref.split(".")
        if attrs[-1] in FILE_ENDINGS or first in OTHER_LIBRARIES:
            continue
        if first in networks.NETWORK_NAMES:
            continue  # the layers of §3's tables, checked by test_parameter_tables_match_the_full_size_networks
        obj = _resolve(first)
        for attr in attrs:
            obj = _attribute(obj, attr)
        if obj is None:
            missing.append(ref)
    assert not missing, f"docs/design.md points at names or files the repository does not have: {sorted(missing)}"


@pytest.mark.slow
def test_parameter_tables_match_the_full_size_networks(full_size_trainer):
    """Every row `| `NET.attr.path` | ... | count |` of §3, every network total in its heading and the totals
    table are count_params() of the Birds networks at 128x128 and channel multiplier 1."""
    section = _section(_text(), 3)
    assert full_size_trainer.model.cfg == ModelConfig()
    nets = full_size_trainer.model.networks

    rows = re.findall(r"^\| `([\w.]+)` \|.*\| ([\d,]+) \|$", section, re.MULTILINE)
    assert len(rows) > 50, "the tables of §3 were not found"
    for path, count in rows:
        name, *attrs = path.split(".")
        layer = nets[name]
        for attr in attrs:
            layer = getattr(layer, attr)
        assert layer.count_params() == _count(count), f"{path}: docs/design.md says {count}"

    headings = re.findall(r"^### (\w+)\b.*?\(([\d,]+) parameters", section, re.MULTILINE)
    assert {name for name, _ in headings} == set(networks.NETWORK_NAMES) - {"V_bg", "V_p", "V_c"}
    for name, count in headings:
        assert nets[name].count_params() == _count(count), f"### {name}: docs/design.md says {count}"

    totals_table = section.split("### Totals")[1]
    totals = dict(re.findall(r"^\| (\w+|\*\*total\*\*) \| ([\d,*]+) \|$", totals_table, re.MULTILINE))
    assert {k for k in totals if k != "**total**"} == set(networks.NETWORK_NAMES)
    for name in networks.NETWORK_NAMES:
        assert nets[name].count_params() == _count(totals[name]), f"totals table, {name}"
    assert sum(net.count_params() for net in nets.values()) == _count(totals["**total**"])
