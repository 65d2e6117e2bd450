"""``python -m multihome``: the same as the ``multihome`` command."""

from multihome.cli import main

main()
