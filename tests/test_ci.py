"""CI (`.ci/run`) runs exactly the README's test command, installs what that command needs, and splits the suite
into two streams that keep each shared fixture in one worker."""

import ast
import os
import pathlib
import re
import subprocess
import sys

import tomllib

from tests import conftest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _readme_test_command() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"Install and run the tests[^\n]*\n+```bash\n(.+?)\n```", text)
    assert match, "README.md has no 'Install and run the tests' command block"
    return match.group(1)


def _ci_command() -> str:
    lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert len(lines) == 1, lines
    return lines[0]


def _pins(lines) -> dict:
    """name -> `name==version` of pinned requirements (comments, blanks and `-r` includes left out)."""
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            pins[re.split(r"[=<>!~\[ ]", line)[0].lower()] = line
    return pins


def test_ci_runs_the_readme_test_command():
    assert _ci_command() == _readme_test_command()


def test_the_test_extras_are_the_pins_ci_installs():
    """`pip install -e .[test]` and CI's `-r requirements-test.txt` install the same test tools and versions
    (ruff, the linter CI runs before the tests, is CI's alone)."""
    ci = _pins((REPO / "requirements-test.txt").read_text().splitlines())
    extras = _pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"])
    assert {k: v for k, v in ci.items() if k != "ruff"} == extras


def _session_fixtures() -> set:
    """Names of conftest's session-scoped fixtures."""
    tree = ast.parse((REPO / "tests" / "conftest.py").read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
            for d in node.decorator_list if isinstance(d, ast.Call) and ast.unparse(d.func) == "pytest.fixture"
            and any(k.arg == "scope" and ast.literal_eval(k.value) == "session" for k in d.keywords)}


def test_every_user_of_a_session_fixture_runs_in_one_stream():
    """A session fixture is built once per xdist worker that needs it: its users (tests, or a module's fixtures
    built on it) share one stream, so CI builds each once."""
    fixtures = _session_fixtures()
    assert {"reference_run_dir", "full_size_trainer", "exported", "keras_files"} <= fixtures
    streams = {name: set() for name in fixtures}
    for path in sorted((REPO / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                for arg in node.args.args:
                    if arg.arg in fixtures:
                        streams[arg.arg].add((conftest.stream_of(f"tests/{path.name}::{node.name}"), path.name))
    for name, users in streams.items():
        assert users, f"no test uses conftest's {name}"
        assert len({stream for stream, _ in users}) == 1, f"{name} is used in both streams: {sorted(users)}"


STREAM_PROBE = """
import os


def test_{n}():
    with open(os.path.join(os.environ["PROBE_OUT"], "{file}-{n}"), "w") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"])
"""


def test_the_ci_command_runs_each_stream_whole_in_one_worker(tmp_path):
    """`pytest -n 2` with conftest's scheduler: two files of each stream, two tests each; every test of one
    stream runs in the same worker, and the two streams in different workers."""
    files = {conftest.END_TO_END_STREAM[0]: conftest.STREAMS[0], conftest.END_TO_END_STREAM[1]: conftest.STREAMS[0],
             "test_train.py": conftest.STREAMS[1], "test_losses.py": conftest.STREAMS[1]}
    suite, out = tmp_path / "tests", tmp_path / "out"
    suite.mkdir()
    out.mkdir()
    for name in files:
        (suite / name).write_text("".join(STREAM_PROBE.format(n=n, file=name) for n in range(2)))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "tests.conftest",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(suite)], cwd=tmp_path,
                          env={**os.environ, "PROBE_OUT": str(out), "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    worker = {}
    for ran in out.iterdir():
        worker.setdefault(files[ran.name.rsplit("-", 1)[0]], set()).add(ran.read_text())
    assert len(list(out.iterdir())) == 8
    assert all(len(workers) == 1 for workers in worker.values()), worker
    assert worker[conftest.STREAMS[0]] != worker[conftest.STREAMS[1]], worker
