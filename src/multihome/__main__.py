"""``python -m multihome``: the same as the ``multihome`` command (used inside namespaces)."""

from multihome._entry import main

main()
