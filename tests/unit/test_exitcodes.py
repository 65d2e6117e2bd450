"""The exit codes: ``multihome.errors`` keeps them as plain numbers (no ``enum`` where no
error is raised: the no-op apply's path) and gives the IntEnums of ``multihome.exitcodes``
under their old names; every error carries the code it carried as an IntEnum member."""

from __future__ import annotations

import subprocess
import sys
from enum import IntEnum

import multihome
from multihome import errors, exitcodes


def test_the_errors_module_gives_the_int_enums_under_their_old_names() -> None:
    """``from multihome.errors import ExitCode`` (and the package's ``multihome.ExitCode``)
    is the IntEnum, with the documented values (docs/design.md, section 11)."""
    from multihome.errors import DetailedExitCode, ExitCode

    assert ExitCode is exitcodes.ExitCode is multihome.ExitCode
    assert DetailedExitCode is exitcodes.DetailedExitCode
    assert issubclass(ExitCode, IntEnum) and issubclass(DetailedExitCode, IntEnum)
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "FAILURE": 1,
        "BAD_INPUT": 2,
        "ROLLED_BACK": 3,
    }
    assert {code.name: int(code) for code in DetailedExitCode} == {
        "UNCHANGED": 0,
        "ERROR": 1,
        "CHANGED": 2,
    }
    assert not hasattr(errors, "NoSuchName")


def test_every_error_carries_its_exit_code() -> None:
    """The errors' codes, plain ints, equal the members they were: 1 by default, 2 for bad
    input and a missing lab program, 3 for a rollback on purpose."""
    expected = {
        errors.MultihomeError: exitcodes.ExitCode.FAILURE,
        errors.InputError: exitcodes.ExitCode.BAD_INPUT,
        errors.NotPermittedError: exitcodes.ExitCode.BAD_INPUT,
        errors.MissingProgramError: exitcodes.ExitCode.BAD_INPUT,
        errors.EnvironmentMissingError: exitcodes.ExitCode.FAILURE,
        errors.RolledBackError: exitcodes.ExitCode.ROLLED_BACK,
        errors.LockTimeoutError: exitcodes.ExitCode.FAILURE,
    }
    for error, code in expected.items():
        assert type(error("x").exit_code) is int
        assert error("x").exit_code == code, error


def test_importing_the_errors_does_not_import_enum() -> None:
    """A fresh interpreter that imports multihome.errors has not imported enum."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, multihome.errors; print('enum' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout == "False\n", proc.stderr
