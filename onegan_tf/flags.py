"""absl flags of the command-line jobs, generated from the fields of `onegan_tf.config` (the only place flags are read).

Every field of `ModelConfig`, `DataConfig` and `TrainConfig` is one flag of the same name, with the field's
default and help text; `config_from_flags()` collects the parsed values into one frozen `Config`.
Flagfiles (`--flagfile=configs/cub.cfg`) hold only what differs from these defaults and may include others.
Importing this module defines no flag: each entry point defines these (and its own) on a private
`FlagValues` when its `main(argv)` runs (`onegan_tf.cli`).
"""

from __future__ import annotations

import dataclasses
import typing

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
