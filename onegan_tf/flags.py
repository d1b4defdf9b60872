"""absl flags of the command-line jobs, generated from the fields of `onegan_tf.config` (the only place flags are read).

Every field of `ModelConfig`, `DataConfig` and `TrainConfig` is one flag of the same name, with the field's
default and help text; `config_from_flags()` collects the parsed values into one frozen `Config`.
Flagfiles (`--flagfile=configs/cub.cfg`) hold only what differs from these defaults and may include others.
`parse_private()` parses the flags of a stand-alone tool (export, classifier, finetune) on their own.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from typing import Callable, Sequence

from absl import flags

from onegan_tf.config import Config, ConfigError, DataConfig, ModelConfig, TrainConfig

SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
_DEFINERS = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer, float: flags.DEFINE_float,
             str: flags.DEFINE_string}


def define_config_flags(flag_values: flags.FlagValues = flags.FLAGS, exclude: tuple = ()) -> None:
    """Define one flag per config field (idempotent: a second call defines nothing new)."""
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if field.name in exclude or field.name in flag_values:
                continue
            kind = hints[field.name]
            _DEFINERS[kind](field.name, field.default, f"[{section}] {field.metadata['help']}",
                            flag_values=flag_values)


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS, **overrides) -> Config:
    """The one `Config` of this run, from parsed flags (plus keyword overrides, for tests and tools)."""
    sections = {}
    for section, cls in SECTIONS.items():
        kwargs = {}
        for field in dataclasses.fields(cls):
            if field.name in overrides:
                kwargs[field.name] = overrides[field.name]
            elif field.name in flag_values:
                kwargs[field.name] = flag_values[field.name].value
        try:
            sections[section] = cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"--{e}") from None
    return Config(**sections)


def parse_private(argv: Sequence[str] | None, define_fn: Callable[[flags.FlagValues], None], required: Sequence = (),
                  usage: str = "") -> flags.FlagValues | None:
    """Parse `argv` (default sys.argv) into a new FlagValues defined by `define_fn(fv)`.

    Private, so that a tool's --batch_size, --run_dir, ... do not collide with the trainer's flags when both
    modules are imported in one process (tests, notebooks). `required` names flags that must be given; a
    tuple in it means at least one of those. On a bad or missing flag, prints the error, `usage` and the
    flags' help to stderr and returns None: the caller exits with status 2.
    """
    fv = flags.FlagValues()
    define_fn(fv)
    groups = [(r,) if isinstance(r, str) else tuple(r) for r in required]
    try:
        fv(list(sys.argv if argv is None else argv))
        if any(all(fv[name].value is None for name in group) for group in groups):
            names = [f"--{g[0]}" if len(g) == 1 else "at least one of " + ", ".join(f"--{n}" for n in g)
                     for g in groups]
            listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
            raise flags.Error(f"{listed} {'is' if len(names) == 1 else 'are'} required")
    except flags.Error as e:
        print(f"{e}\n\nusage: {usage}\n{fv.get_help()}", file=sys.stderr)
        return None
    return fv
