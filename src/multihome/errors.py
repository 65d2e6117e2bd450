"""The error hierarchy of multihome and the exit codes the CLI maps it to.

Every error multihome raises on purpose is a :class:`MultihomeError` defined here; the CLI
prints its message (never a traceback) and exits with its ``exit_code``. A leaf also inherits
the builtin exception it is a kind of, so ``except ValueError`` or ``except TimeoutError``
around library calls keeps working (nmstate's habit)::

    MultihomeError(Exception)                  exit 1 unless a subclass says otherwise
    ├── InputError(ValueError)                 exit 2: bad input or usage, nothing changed
    │   ├── NotPermittedError(PermissionError) not root / no CAP_NET_ADMIN
    │   ├── LabExistsError                     a lab of that name exists or is being built
    │   └── CloudConflictError                 a cloud resource of ours cannot be changed
    │                                            in place into the desired one
    ├── EnvironmentMissingError                a program or package the command needs is
    │   │                                        missing
    │   └── MissingProgramError                exit 2: a program the lab needs
    ├── ApplyError                             a kernel change failed; what was done is undone
    │   └── ConcurrentChangeError(FileExistsError)  another writer took a change's slot
    │                                            between the read and the apply (EEXIST)
    ├── RolledBackError                        exit 3: an apply was rolled back on purpose
    ├── LockTimeoutError(TimeoutError)         another multihome held the namespace's lock
    ├── NothingToConfirmError(LookupError)     ``confirm`` found no apply waiting for it
    ├── MetadataUnavailable                    no OpenStack metadata could be read: wait, or
    │                                            use the kernel's view (never a deletion)
    ├── CloudError                             the cloud refused or failed a request
    └── LabError                               building or removing the lab failed
        └── LabInterrupted                     a signal stopped a lab command

Bad input of every kind -- a command-line value, the configuration file, a topology or
scenario file, ``network_data.json`` -- is one class, :class:`InputError` (``ConfigError`` is
its old name, kept as an alias for library users). The boundary reader
(:mod:`multihome.reader`) raises it with :meth:`InputError.at`, whose message reads
``FILE:LINE:COL: KEY.PATH: what is wrong; how to fix it``. Every message says what is wrong,
where, and how to fix it.
"""

from __future__ import annotations

#: The exit codes (docs/design.md, section 11) as the errors carry them: plain numbers.
#: Their IntEnums, :class:`ExitCode` and :class:`DetailedExitCode`, live in
#: :mod:`multihome.exitcodes` and are made when first asked for (``from multihome.errors
#: import ExitCode`` works as before): importing ``enum`` and building two IntEnums is half
#: the interpreter's own start-up in instructions, on the path of the no-op apply
#: (:mod:`multihome.noop`), which imports this module and uses neither.
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_ROLLED_BACK = 0, 1, 2, 3
#: The exit codes with ``--detailed-exit-codes`` (terraform's convention).
DETAILED_UNCHANGED, DETAILED_ERROR, DETAILED_CHANGED = 0, 1, 2

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    # Re-exported (``as``) for the type checker; at run time :func:`__getattr__` gives them.
    from multihome.exitcodes import DetailedExitCode as DetailedExitCode  # noqa: PLC0414
    from multihome.exitcodes import ExitCode as ExitCode  # noqa: PLC0414


def __getattr__(name: str) -> object:
    """:class:`ExitCode` and :class:`DetailedExitCode` (:mod:`multihome.exitcodes`), imported
    when first asked for."""
    if name in ("ExitCode", "DetailedExitCode"):
        from multihome import exitcodes

        return getattr(exitcodes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class MultihomeError(Exception):
    """Base class of every error multihome raises on purpose."""

    exit_code: int = EXIT_FAILURE


class InputError(MultihomeError, ValueError):
    """Bad input or usage: nothing was changed."""

    exit_code = EXIT_BAD_INPUT
    source: str | None = None
    """The file or document at fault, when the error is about one."""
    path: str | None = None
    """The key path in it (``servers[0].ports[1].fixed_ip``, ``(top level)``)."""
    line: int | None = None
    """Where in the file (counted from 1), when the loader knows it."""
    column: int | None = None
    fix: str | None = None
    """How to fix it."""

    @classmethod
    def at(
        cls,
        source: str,
        problem: str,
        fix: str,
        *,
        path: str | None = None,
        mark: tuple[int, int] | None = None,
    ) -> InputError:
        """The error about ``source`` (at ``mark``: line and column, and key ``path``):
        ``FILE:LINE:COL: PATH: problem; fix``."""
        where = source if mark is None else f"{source}:{mark[0]}:{mark[1]}"
        if path is not None:
            where = f"{where}: {path}"
        error = cls(f"{where}: {problem}; {fix}" if fix else f"{where}: {problem}")
        error.source, error.path, error.fix = source, path, fix or None
        if mark is not None:
            error.line, error.column = mark
        return error


#: The old name of :class:`InputError` (the configuration file's errors are input errors).
ConfigError = InputError


class NotPermittedError(InputError, PermissionError):
    """The command needs privileges the caller does not have."""


class LabExistsError(InputError):
    """A lab of that name exists (or is being built): nothing was changed."""


class CloudConflictError(InputError):
    """The cloud holds a resource of ours that cannot be changed in place into the desired one."""


class EnvironmentMissingError(MultihomeError):
    """A program or package the command needs is not installed."""


class MissingProgramError(EnvironmentMissingError):
    """A program the lab needs is not installed: exit 2, nothing was changed."""

    exit_code = EXIT_BAD_INPUT


class ApplyError(MultihomeError):
    """A change to the kernel failed; the changes made before it were undone."""


class ConcurrentChangeError(ApplyError, FileExistsError):
    """Another writer (a DHCP client's hook, an admin) added a route or rule into the slot
    of one of the changes between the read and the apply (the kernel said "File exists");
    what was done is undone, completely: read and plan again (the agent does at once)."""


class RolledBackError(MultihomeError):
    """An apply was rolled back on purpose (failed check or no confirmation)."""

    exit_code = EXIT_ROLLED_BACK


class LockTimeoutError(MultihomeError, TimeoutError):
    """Another multihome held the namespace's lock for longer than we were willing to wait."""


class NothingToConfirmError(MultihomeError, LookupError):
    """``multihome confirm`` found no apply waiting for a confirmation."""


class MetadataUnavailable(MultihomeError):
    """No metadata could be read (no config drive, service unreachable): wait or use the
    kernel's view; never a reason to delete anything."""


class CloudError(MultihomeError):
    """The cloud refused or failed a request; the message says what to do about it."""


class LabError(MultihomeError):
    """Building or removing the lab failed (what was built is removed again)."""


class LabInterrupted(LabError):
    """A signal stopped a lab command; what ``up`` had built is removed on the way out."""
