"""The error hierarchy of multihome and the exit codes the CLI maps it to.

::

    MultihomeError                       exit 1 unless a subclass says otherwise
    ├── InputError(ValueError)           exit 2: bad input or usage, nothing changed
    │   ├── ConfigError                  the config file (names file, key and fix)
    │   └── NotPermittedError            not root / no CAP_NET_ADMIN
    ├── ApplyError                       a kernel change failed; what was done is undone
    ├── RolledBackError                  exit 3: an apply was rolled back on purpose
    └── EnvironmentMissingError          a program or package the command needs is missing

Every message says what is wrong, where, and how to fix it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``multihome`` command (docs/design.md, section 11)."""

    OK = 0
    FAILURE = 1
    BAD_INPUT = 2
    ROLLED_BACK = 3


class DetailedExitCode(IntEnum):
    """Exit codes with ``--detailed-exit-codes`` (terraform's convention)."""

    UNCHANGED = 0
    ERROR = 1
    CHANGED = 2


class MultihomeError(Exception):
    """Base class of every error multihome raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE


class InputError(MultihomeError, ValueError):
    """Bad input or usage: nothing was changed."""

    exit_code = ExitCode.BAD_INPUT


class ConfigError(InputError):
    """The configuration file is invalid; the message names the file, the key and the fix."""


class NotPermittedError(InputError):
    """The command needs privileges the caller does not have."""


class ApplyError(MultihomeError):
    """A change to the kernel failed; the changes made before it were undone."""


class RolledBackError(MultihomeError):
    """An apply was rolled back on purpose (failed check or no confirmation)."""

    exit_code = ExitCode.ROLLED_BACK


class EnvironmentMissingError(MultihomeError):
    """A program or package the command needs is not installed."""
