"""The one command-line idiom of every entry point: `main(argv=None) -> int` parses a private `FlagValues`.

Each tool (`python -m onegan_tf.train`, `.evaluate`, `.tasks`, `.export`, `.finetune`, `.classifier`,
`.report`, `.bench`, `.baselines`, `.data.synthetic`) has

    def define_flags(fv): ...                  # its flags, defined on fv only
    def main(argv=None) -> int:                # argv[0] is the program name; None = sys.argv
        fv = cli.parse(argv, define_flags, required=..., usage=...)
        if fv is None:
            return 2
        ...

    if __name__ == "__main__":
        sys.exit(main())

so importing a module defines no flag, two tools' flags (both have --batch_size, --run_dir) never collide
in one process, and `onegan_tf.<tool>:main` is the console entry point. Flagfiles (`--flagfile=...`) work
as with absl's global flags.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from absl import flags, logging

HELP = ("--help", "-h", "--helpfull", "-?")


def parse(argv: Sequence[str] | None, define_fn: Callable[[flags.FlagValues], None], required: Sequence = (),
          usage: str = "") -> flags.FlagValues | None:
    """Parse `argv` (default sys.argv) into a new FlagValues defined by `define_fn(fv)`.

    `required` names flags that must be given; a tuple in it means at least one of those. With --help,
    prints `usage` and the flags' help to stdout and exits 0. On a bad or missing flag, or a positional
    argument, prints the error, `usage` and the flags' help to stderr and returns None: the caller exits with
    status 2. absl's logging flags (-v, --logtostderr, ...) are accepted as under `absl.app.run`, and logging
    is set up as it sets it up (INFO unless -v says otherwise).
    """
    fv = flags.FlagValues()
    define_fn(fv)
    for flag in flags.FLAGS.get_flags_for_module("absl.logging"):
        fv[flag.name] = flag
    argv = list(sys.argv if argv is None else argv)
    if any(a in HELP for a in argv[1:]):
        print(f"usage: {usage}\n{fv.get_help()}")
        raise SystemExit(0)
    groups = [(r,) if isinstance(r, str) else tuple(r) for r in required]
    try:
        extra = fv(argv)[1:]
        if extra:
            raise flags.Error(f"unexpected arguments: {' '.join(extra)}")
        if any(all(fv[name].value is None for name in group) for group in groups):
            names = [f"--{g[0]}" if len(g) == 1 else "at least one of " + ", ".join(f"--{n}" for n in g)
                     for g in groups]
            listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
            raise flags.Error(f"{listed} {'is' if len(names) == 1 else 'are'} required")
    except flags.Error as e:
        print(f"{e}\n\nusage: {usage}\n{fv.get_help()}", file=sys.stderr)
        return None
    _start_logging(fv)
    return fv


def _start_logging(fv: flags.FlagValues) -> None:
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    logging.use_absl_handler()
    if not fv["verbosity"].present:
        logging.set_verbosity(logging.INFO)
