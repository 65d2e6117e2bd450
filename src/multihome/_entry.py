"""The ``multihome`` console script (and ``python -m multihome``).

Two commands run without click: ``multihome --version`` (click alone costs about three times
the interpreter's own start-up, and ``--version`` is what scripts, udev rules and
configuration management call to probe for multihome), and the plain ``apply`` (``[--root
R] [--config F] apply`` with ``-q``, ``--detailed-exit-codes``, ``--no-sysctls``,
``--lock-timeout S``: what boot, udev and configuration management run), first as a no-op
(:mod:`multihome.noop`), else in full (:mod:`multihome.apply_cli`). Everything else goes to
the CLI.
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
        from multihome.noop import answer, parse

        request = parse(args)
        if request is not None:
            decided = answer(request, args)
            if decided.code is not None:
                sys.exit(decided.code)
            from multihome.apply_cli import main as apply_main

            apply_main(request, args, changed=decided.changed)
    from multihome.cli import main as cli_main

    cli_main()
