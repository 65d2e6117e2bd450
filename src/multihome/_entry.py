"""The ``multihome`` console script (and ``python -m multihome``).

Two answers come before click is imported: ``multihome --version`` (click alone costs about
three times the interpreter's own start-up, and ``--version`` is what scripts, udev rules and
configuration management call to probe for multihome), and an ``apply`` with nothing to do
(:mod:`multihome.noop`: the re-apply that boot, udev and configuration management repeat).
Everything else goes to the CLI.
"""

import sys


def main() -> None:
    """Entry point (``[project.scripts]``, ``__main__``)."""
    args = sys.argv[1:]
    if args == ["--version"]:
        from multihome._version import __version__

        # The same text as click's version_option in multihome.cli.
        sys.stdout.write(f"multihome, version {__version__}\n")
        sys.exit(0)
    if "apply" in args:
        from multihome.noop import answer

        code = answer(args)
        if code is not None:
            sys.exit(code)
    from multihome.cli import main as cli_main

    cli_main()
