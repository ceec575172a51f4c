"""`.env.example` documents exactly the variables tvbingx/config.py declares, and runs unchanged.

A variable is documented when the line before its ``NAME=`` line is a comment, or is another
documented ``NAME=`` line (related variables may share one comment, e.g. BINGX_API_KEY and
BINGX_API_SECRET, HOST and PORT).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tvbingx.config import VARIABLES, VARIABLES_BY_NAME, load_config

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def _assignments() -> list[tuple[str, str]]:
    """(NAME, value) for each ``NAME=value`` line, in file order."""
    return [match.groups() for line in ENV_EXAMPLE.read_text().splitlines() if (match := ASSIGNMENT.match(line))]


def _documented_names() -> set[str]:
    """Names whose ``NAME=`` line sits under a comment, directly or through a run of ``NAME=`` lines."""
    documented: set[str] = set()
    previous_is_documented = False
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line)
        if line.startswith("#"):
            previous_is_documented = True
        elif match:
            if previous_is_documented:
                documented.add(match.group(1))
            # A NAME= line continues its block only if it is itself documented.
        else:
            previous_is_documented = False
    return documented


def test_the_file_exists():
    assert ENV_EXAMPLE.is_file()


@pytest.mark.parametrize("name", [variable.name for variable in VARIABLES])
def test_every_declared_variable_has_a_line(name):
    assert name in dict(_assignments())


@pytest.mark.parametrize("name", [variable.name for variable in VARIABLES])
def test_every_declared_variable_is_preceded_by_a_comment(name):
    assert name in _documented_names(), f"{name}= in .env.example needs a one-line comment above it"


def test_every_line_is_a_declared_variable():
    stray = [name for name, _ in _assignments() if name not in VARIABLES_BY_NAME]

    assert stray == []


def test_no_variable_is_set_twice():
    names = [name for name, _ in _assignments()]

    assert len(names) == len(set(names))


def test_no_secret_is_filled_in():
    filled = [name for name, value in _assignments() if VARIABLES_BY_NAME[name].secret and value.strip()]

    assert filled == []


class TestLoadedUnchanged:
    @pytest.fixture
    def config(self, tmp_path):
        return load_config({}, env_file=ENV_EXAMPLE, base_dir=tmp_path)

    def test_it_uses_sqlite_in_the_base_dir(self, config, tmp_path):
        database = config["DATABASES"]["default"]

        assert (database["ENGINE"], database["NAME"]) == ("django.db.backends.sqlite3", str(tmp_path / "db.sqlite3"))

    def test_it_trades_dry_run(self, config):
        assert config["TRADING_MODE"] == "dry_run"

    def test_it_runs_in_debug(self, config):
        assert config["DEBUG"] is True

    def test_it_has_no_redis(self, config):
        assert config["REDIS_URL"] == ""

    def test_its_values_match_the_declared_defaults_apart_from_debug(self, config):
        differing = {
            variable.name for variable in VARIABLES if not variable.secret and config[variable.name] != variable.default
        }

        assert differing == {"DEBUG"}
