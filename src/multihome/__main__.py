"""``python -m multihome``: the same as the ``multihome`` command (used inside namespaces)."""

from multihome.cli import main

main()
