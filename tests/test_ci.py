"""CI (`.ci/run`) runs exactly the README's test command, and installs what that command needs."""

import pathlib
import re

import tomllib

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
