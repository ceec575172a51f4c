"""The README stays true to the code: it documents every variable and the two commands."""

from pathlib import Path

import pytest

from tvbingx.config import VARIABLES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", [variable.name for variable in VARIABLES])
def test_every_variable_is_in_the_configuration_reference(name):
    assert f"`{name}`" in README


def test_it_gives_the_run_and_the_test_command():
    assert "make run" in README and "make test" in README
