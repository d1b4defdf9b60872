"""The package's import graph points one way: each module imports only its own layer and the layers below.

config at the bottom, then the data, then the paper core, then training and checkpoints, then the tools and
entry points. Read from the source (no import runs), so the rule holds for lazily imported modules too.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "onegan_tf"
# Bottom to top; a name is a module or a sub-package of onegan_tf. Every module must be in one layer.
LAYERS = (
    ("runtime", "config", "cli", "files"),
    ("data",),
    ("checks", "layers", "pose", "networks", "model", "losses", "adam", "ema", "segmenter", "figures", "metrics"),
    ("trainer", "distill", "checkpoint", "flags"),
    ("flops", "machine", "tasks", "baselines", "classifier", "finetune", "serving", "export", "evaluate",
     "diagnose", "report", "bench", "train"),
)


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"onegan_tf.{module} is in no layer of tests/test_layers.py: add it to LAYERS")


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name:
            out[name] = path
    return out


def _imports(path: pathlib.Path, modules) -> set[str]:
    """The onegan_tf modules `path` imports (`from onegan_tf.data import synthetic` -> data.synthetic)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("onegan_tf."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "onegan_tf":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub.removeprefix("onegan_tf.") in modules else node.module)
    return {m.removeprefix("onegan_tf.") for m in found if m != "onegan_tf"}


def test_every_module_imports_only_its_layer_and_below():
    modules = _modules()
    upward = [f"onegan_tf.{name} (layer {_layer(name)}) imports onegan_tf.{dep} (layer {_layer(dep)})"
              for name, path in modules.items() for dep in sorted(_imports(path, modules))
              if _layer(dep) > _layer(name)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_data_imports_nothing_above_config():
    modules = _modules()
    for name, path in modules.items():
        if name.split(".")[0] == "data":
            assert all(_layer(dep) <= 1 for dep in _imports(path, modules)), name


def test_the_rule_sees_an_upward_import(tmp_path):
    """The walk finds `from onegan_tf.trainer import ...` in a data module written for this test."""
    fake = tmp_path / "fake.py"
    fake.write_text("from onegan_tf.trainer import PHASES\nfrom onegan_tf.data import synthetic\n")
    modules = _modules()
    assert _imports(fake, modules) == {"trainer", "data.synthetic"}
    assert _layer("trainer") > _layer("data.synthetic")
