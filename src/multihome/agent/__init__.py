"""``multihome agent``: keep the policy true while the VM changes, driven by netlink events.

Modules: :mod:`events` (netlink subscription and debouncing), :mod:`service` (the reconcile
loop), :mod:`addressing` (static addresses from metadata, DHCP for hot-plugged ports),
:mod:`dhcphook` (the script dhclient runs), :mod:`state` (``agent.json`` for ``status``),
:mod:`sdnotify` (systemd's readiness protocol), :mod:`cli` (the command).
"""
