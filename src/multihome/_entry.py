"""The ``multihome`` console script.

``multihome --version`` is answered here, before click is imported: click alone costs about
three times the interpreter's own start-up, and ``--version`` is what scripts, udev rules and
configuration management call to probe for multihome. Everything else goes to the CLI.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point (``[project.scripts]``)."""
    if sys.argv[1:] == ["--version"]:
        from multihome._version import __version__

        # The same text as click's version_option in multihome.cli.
        sys.stdout.write(f"multihome, version {__version__}\n")
        sys.exit(0)
    from multihome.cli import main as cli_main

    cli_main()
