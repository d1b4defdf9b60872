"""The command line that this folder's JSON-writing measurement scripts share (code_influence.py, parent_factors.py,
pose_recovery.py, shape_ceiling.py): parse the script's flags, compute one dict, record the command in it,
write it to `--out` and print it. Imported as a sibling module: the scripts run as `python docs/parents/X.py`,
which puts this folder on the path.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from absl import flags

from onegan_tf import cli
from onegan_tf.files import write_json


def json_main(argv: Sequence[str] | None, define_flags: Callable[[flags.FlagValues], None], doc: str,
              required: Sequence[str], compute: Callable[[flags.FlagValues], dict]) -> int:
    """`main` of a script whose docstring has a `usage: ...` line: 2 on bad flags, else 0 once `--out` is
    written with `compute(flags)` and the command that ran it."""
    fv = cli.parse(argv, define_flags, required=required, usage=doc.split("usage: ")[1].split("\n")[0])
    if fv is None:
        return 2
    out = compute(fv)
    out["command"] = " ".join(sys.argv if argv is None else argv)
    write_json(fv.out, out)
    print(out)
    return 0
