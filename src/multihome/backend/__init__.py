"""Kernel backends: the only code that reads or changes network state.

``NetlinkBackend`` talks to the kernel of the current network namespace through pyroute2
(so ``ip netns exec NS multihome ...`` works); ``FakeBackend`` is its in-memory twin for unit
tests of pure logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from multihome.model import Address, HostState, IPAddress

if TYPE_CHECKING:
    from multihome.plan import Change


@dataclass(frozen=True)
class Lookup:
    """The answer of a route lookup (``ip route get``)."""

    ifname: str | None
    gateway: IPAddress | None
    prefsrc: IPAddress | None
    table: int | None


class Backend(Protocol):
    """Reads and changes the network state of one namespace."""

    def read(self) -> HostState:
        """Links, addresses, routes of every table, rules and the relevant sysctls."""

    def apply(self, changes: Sequence[Change]) -> int:
        """Make ``changes`` in order; stop at the first failure and raise ``ChangeFailed``.

        Returns how many changes were made.
        """

    def lookup(
        self, dst: IPAddress, src: IPAddress | None = None, oif: str | None = None
    ) -> Lookup | None:
        """Resolve ``dst`` as the kernel would; None when unreachable."""

    def set_link_up(self, ifname: str) -> None:
        """Set ``ifname`` administratively up (a no-op when it is); ``OSError`` when it is
        gone. The link's state, like its addresses, is part of :meth:`read`."""

    def add_address(self, address: Address, *, prefix_route: bool = True) -> bool:
        """Add ``address`` to its link; False when it was there already. Without
        ``prefix_route`` the kernel adds no subnet route for it (``noprefixroute``): the
        caller adds its own. ``OSError`` on any other refusal."""

    def remove_address(self, address: Address) -> bool:
        """Remove ``address`` from its link; False when it was not there."""

    def announce(self, ifname: str, mac: str, address: IPAddress) -> None:
        """Send a gratuitous ARP for ``address`` from ``ifname`` (MAC ``mac``), so that
        neighbours' caches that learnt it through another port (ARP flux) are corrected."""

    def close(self) -> None:
        """Release the netlink socket (if any)."""


class ChangeFailed(Exception):
    """A change failed; ``done`` changes before it were made."""

    def __init__(self, change: Change, done: int, reason: str) -> None:
        super().__init__(reason)
        self.change = change
        self.done = done
        self.reason = reason
