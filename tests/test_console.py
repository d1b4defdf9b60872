"""The console commands of pyproject.toml (`onegan-train`, ...) beside `python -m onegan_tf.<tool>`: each
names its tool's entry function, which prints the tool's flags for --help and --helpfull and exits 0. The
functions are called in this process: the installed scripts may belong to another checkout."""

import importlib
import pathlib

import pytest
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
TOOLS = ("train", "evaluate", "tasks", "export", "finetune", "classifier", "report", "bench", "diagnose",
         "baselines", "data.synthetic", "data.heldout")


def _entry(name):
    module, function = SCRIPTS[name].split(":")
    return getattr(importlib.import_module(module), function)


def test_every_tool_has_a_console_command_named_after_it():
    assert {f"onegan-{tool.split('.')[-1]}": f"onegan_tf.{tool}:main" for tool in TOOLS} == SCRIPTS
    assert all(callable(_entry(name)) for name in SCRIPTS)


@pytest.mark.parametrize("help_flag", ["--help", "--helpfull"])
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_command_prints_its_help_and_exits_0(name, help_flag, capsys):
    # The help contract is the one command-line idiom's (onegan_tf.cli: main(argv=None) -> int).
    with pytest.raises(SystemExit) as exit_:
        _entry(name)([name, help_flag])
    assert exit_.value.code in (0, None)
    out = capsys.readouterr().out
    assert "usage" in out and "--" in out, out[:500]
