"""The exit codes of the ``multihome`` command as IntEnums (docs/design.md, section 11).

:mod:`multihome.errors` holds the numbers (its errors carry them as plain ints) and gives
these classes to whoever asks it for them, importing this module then: ``enum`` is not
imported on the path of the no-op apply (:mod:`multihome.noop`).
"""

from __future__ import annotations

from enum import IntEnum

from multihome.errors import (
    DETAILED_CHANGED,
    DETAILED_ERROR,
    DETAILED_UNCHANGED,
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_ROLLED_BACK,
)


class ExitCode(IntEnum):
    """Exit codes of the ``multihome`` command (docs/design.md, section 11)."""

    OK = EXIT_OK
    FAILURE = EXIT_FAILURE
    BAD_INPUT = EXIT_BAD_INPUT
    ROLLED_BACK = EXIT_ROLLED_BACK


class DetailedExitCode(IntEnum):
    """Exit codes with ``--detailed-exit-codes`` (terraform's convention)."""

    UNCHANGED = DETAILED_UNCHANGED
    ERROR = DETAILED_ERROR
    CHANGED = DETAILED_CHANGED
