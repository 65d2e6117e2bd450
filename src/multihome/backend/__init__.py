"""Kernel backends: the :class:`Backend` protocol the engine reads and changes the kernel through.

``NetlinkBackend`` (:mod:`~multihome.backend.netlink`) serves the namespace this process runs
in (so ``ip netns exec NS multihome ...`` works): links, addresses, routes and rules through
multihome's own rtnetlink codec (:mod:`~multihome.backend.rtnl`, a raw ``AF_NETLINK`` socket,
no pyroute2), sysctls through ``/proc/sys``, gratuitous ARP and unsolicited IPv6 neighbour
advertisements through an ``AF_PACKET`` socket.
``FakeBackend`` (:mod:`~multihome.backend.fake`) is its in-memory twin for unit tests of pure
logic.

Every kernel read or write of the product goes through it, so that the logic above runs on
the in-memory twin: the engine and the transaction apply plans; the agent brings links up and
gives metadata-only ports their addresses (:meth:`Backend.set_link_up`,
:meth:`Backend.add_address`); the DHCP client hook (:mod:`multihome.agent.dhcphook`) moves a
lease's address and routes into place (:meth:`Backend.add_address` without the prefix route,
:meth:`Backend.replace_route`); the post-apply checks (:mod:`multihome.safety.checks`) read
whether a next hop answers ARP/ND (:meth:`Backend.neighbour_state`). Two exceptions, both
outside the protocol by design: the agent's netlink *event* listener
(:mod:`multihome.agent.events`, an event source injected into the agent, on the codec's
multicast socket) and the lab (:mod:`multihome.lab`), which builds its own namespaces with
pyroute2, ``ip``, ``nft`` and daemons.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from multihome.model import Address, HostState, IPAddress, Lifetime, Route
from multihome.values import frozen

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from typing import Protocol

    from multihome.plan import Change
else:  # a plain base at run time: nothing checks a Backend's type then
    Protocol = object


@frozen
class Lookup:
    """The answer of a route lookup (``ip route get``)."""

    ifname: str | None
    gateway: IPAddress | None
    prefsrc: IPAddress | None
    table: int | None
    type: int = 1
    """The route type (``RTN_UNICAST``, ``RTN_LOCAL``, ...)."""
    error: int | None = None
    """The errno of a refusal (``route_get`` only; ``lookup`` answers None instead)."""


#: A route lookup's question: (destination, source or None, output interface or None).
Query = tuple[IPAddress, IPAddress | None, str | None]


@frozen
class Announcement:
    """An announcement to send (a gratuitous ARP for IPv4, an unsolicited neighbour
    advertisement for IPv6): ``address`` lives on ``ifname``, whose MAC is ``mac``."""

    ifname: str
    mac: str
    address: IPAddress


@frozen
class Fingerprint:
    """A digest of a namespace's state, and the sysctl values it covers."""

    digest: str
    """Equal digests: equal states (links, addresses, routes, rules, sysctls)."""
    sysctls: Mapping[str, str]


class Backend(Protocol):
    """Reads and changes the network state of one namespace."""

    namespace_lock: str | None
    """The abstract unix socket name that serialises the writers of this namespace
    (:data:`multihome.processes.NAMESPACE_LOCK`); None for a namespace in memory."""

    def read(self) -> HostState:
        """Links, addresses, routes of every table, rules and the relevant sysctls."""

    def expect(self, changed: Collection[str]) -> None:
        """A hint for the next :meth:`read`: since the last one, only these kinds of state
        (``link``, ``addr``, ``route``, ``rule``: the agent's events) changed, apart from
        this backend's own changes; the read may keep what the others cannot have changed."""

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

    def add_address(
        self, address: Address, *, prefix_route: bool = True, lifetime: Lifetime | None = None
    ) -> bool:
        """Add ``address`` to its link; False when it was there already. Without
        ``prefix_route`` the kernel adds no subnet route for it (``noprefixroute``): the
        caller adds its own. With ``lifetime`` the address is added or, when it is there,
        given these lifetimes (``ip addr replace``; True either way): the kernel deprecates
        it when the preferred one ends and removes it when the valid one does; without, a
        new address is permanent. ``OSError`` on any other refusal."""

    def remove_address(self, address: Address) -> bool:
        """Remove ``address`` from its link; False when it was not there."""

    def link_index(self, ifname: str) -> int | None:
        """The kernel's index of ``ifname``, read now; None when there is no such link."""

    def replace_route(self, route: Route) -> None:
        """Put ``route`` in its slot (table, destination, metric), replacing the route that
        held it (``ip route replace``): for routes multihome does not own, such as a DHCP
        lease's. ``OSError`` when the kernel refuses it."""

    def neighbour_state(self, ifname: str, address: IPAddress) -> int | None:
        """The ``NUD_*`` state bits of ``address`` in ``ifname``'s neighbour (ARP/ND) table;
        None when it has no entry. ``OSError`` when the link is gone."""

    def lookups(self, queries: Sequence[Query], *, sources: bool = True) -> list[Lookup | None]:
        """:meth:`lookup` of each ``(dst, src, oif)``, in one batch. ``sources=False``: the
        caller reads no answer's ``prefsrc``, which may then be the route's own preferred
        source (None without one) instead of the source the kernel would choose."""

    def lookups_unless(
        self,
        queries: Sequence[Query],
        interrupted: Callable[[], bool],
        batch: int,
        *,
        sources: bool = True,
    ) -> list[Lookup | None] | None:
        """:meth:`lookups`, asked ``batch`` at a time, given up (None) as soon as
        ``interrupted()``, asked before each batch, says so; what the answers need checked
        once (the kernel's route exceptions, :class:`~multihome.backend.netlink.NetlinkBackend`)
        is checked once for all of them, not per batch."""

    def announce(self, items: Sequence[Announcement]) -> list[tuple[Announcement, str]]:
        """Send a gratuitous ARP (IPv4) or an unsolicited neighbour advertisement with the
        override flag (IPv6) for each item from its port, so that neighbours' caches that
        learnt an address through another port (ARP flux) are corrected.

        One batch per apply: the announcements share one socket (a packet socket's bind and
        close each wait for the network stack, ~16 ms). Returns the items that could not be
        sent, with the reason; raises ``OSError`` when nothing could be sent at all.
        """

    def fingerprint(self, *, since_read: bool = False) -> Fingerprint:
        """A digest of everything :meth:`read` returns, computed without building the model
        (a no-op apply compares it with the one recorded after the last apply).

        ``since_read``: the state is the last :meth:`read`'s with this backend's own changes
        made since, and the caller makes sure nothing else changed (the notifications,
        :meth:`watch`): only what those changes touched need be asked of the kernel again.
        A digest that does not match the kernel is never wrong to record, only useless: the
        next no-op apply compares it with the kernel's own and finds them different."""

    def watch(self) -> None:
        """Record, from now on, the namespace's link, address, route and rule notifications,
        but those of the route and rule changes this backend makes itself (:meth:`apply`,
        :meth:`replace_route`): what shows is what anything else changed."""

    def notifications(self) -> list[str] | None:
        """What :meth:`watch` recorded since, and stop: ``route new 2``, ``rule del 10``
        (kind, action, address family), ``link``, ``addr``. None when nothing was watched or
        notifications were lost."""

    def close(self) -> None:
        """Release the netlink socket (if any)."""


class ChangeFailed(Exception):
    """A change failed; ``done`` changes before it were made; ``errno`` the kernel's (None
    when not known)."""

    def __init__(self, change: Change, done: int, reason: str, errno: int | None = None) -> None:
        super().__init__(reason)
        self.change = change
        self.done = done
        self.reason = reason
        self.errno = errno
