"""DHCP leases as the port's own facts: its gateway and its classless static routes.

Read, all under ``--root``:

* ISC dhclient (``lease { ... }`` blocks): ``/var/lib/dhcp/dhclient*.leases`` (Debian,
  Ubuntu), ``/var/lib/dhclient/*.lease[s]`` (RHEL), NetworkManager's dhclient mode
  (``/var/lib/NetworkManager/*.lease``, ``/run/NetworkManager/*.lease``), the agent's own
  clients (``{root}/run/multihome/netns-<cookie>/dhclient.<if>.leases``) and the file named by
  ``-lf`` of every dhclient running in this network namespace (the lab's, anyone's);
* systemd-networkd: ``/run/systemd/netif/leases/<ifindex>`` (``KEY=VALUE``; its expiry is
  the file's time plus ``LIFETIME``);
* NetworkManager's internal client: the ``[dhcp4]`` options NetworkManager keeps in
  ``/run/NetworkManager/devices/<ifindex>``.

The newest valid lease per interface wins (the most recently written file, then the last
block in it); an expired lease is ignored; a malformed file or
lease is a warning (in :attr:`Leases.warnings`), never an error. A dhclient file holds every
lease the client had (the newest last); networkd and NetworkManager keep only the current one.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from multihome.facts import Declaration, DeclaredRoute
from multihome.files import join, rooted
from multihome.leasefiles import (
    NETWORKD_LEASES,
    NM_DEVICES,
    Listings,
    dhclient_files,
    dhclient_lease_files,
    indexed_files,
    signature,
)
from multihome.model import Link
from multihome.values import field, frozen, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

IPv4 = ipaddress.IPv4Address

#: dhclient lease files, as globs below the root.
DEFAULT = ipaddress.IPv4Network("0.0.0.0/0")


_Parsed = tuple[list["Lease"], list[str]]
_ParseFn = Callable[[str, str, float], _Parsed]
_ParseOne = Callable[[str, str, int, float], _Parsed]


class LeaseError(ValueError):
    """A lease that cannot be understood (said as a warning, never raised to the user)."""


@frozen
class Lease:
    """One IPv4 DHCP lease of one interface."""

    origin: str
    """What and where: ``dhclient lease /var/lib/dhcp/dhclient.eth1.leases``."""
    ifname: str | None = None
    """The interface (dhclient names it; networkd and NetworkManager files go by ifindex)."""
    ifindex: int | None = None
    address: IPv4 | None = None
    prefixlen: int | None = None
    routers: tuple[IPv4, ...] = ()
    classless: tuple[DeclaredRoute, ...] | None = None
    """Option 121 (or Microsoft's 249) when the lease has it."""
    expires: float | None = None
    """Seconds since the epoch; None when the lease never expires or does not say."""
    order: tuple[float, int] = (0.0, 0)
    """Which of two leases is newer: the later written file (its modification time: every
    client rewrites it when it binds or renews), then the later block in the file (dhclient
    appends). Not the expiry: a stale file left from an earlier boot may expire later."""

    @property
    def routes(self) -> tuple[DeclaredRoute, ...]:
        """The lease's routes: option 121 when present (RFC 3442 says that a client then
        ignores option 3), else a default through the first router."""
        if self.classless is not None:
            return self.classless
        if self.routers:
            return (DeclaredRoute(DEFAULT, self.routers[0]),)
        return ()

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now

    def declaration(self, ifname: str) -> Declaration:
        return Declaration(ifname, self.address, self.routes, self.origin)


@frozen
class Leases:
    """The newest valid lease of each interface, and what could not be read."""

    by_ifname: dict[str, Lease] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def declarations(self) -> dict[str, Declaration]:
        return {name: lease.declaration(name) for name, lease in self.by_ifname.items()}


# -- parsing (pure) --------------------------------------------------------------------------
def parse_dhclient(text: str, origin: str, mtime: float = 0.0) -> tuple[list[Lease], list[str]]:
    """The ``lease { ... }`` blocks of an ISC dhclient lease file (written at ``mtime``), in
    file order, and a warning per block that cannot be understood (``lease6`` blocks are not
    IPv4: skipped)."""
    leases: list[Lease] = []
    warnings: list[str] = []
    for position, (kind, statements, line) in enumerate(_blocks(text)):
        if kind != "lease":
            continue
        try:
            leases.append(_dhclient_lease(statements, origin, (mtime, position)))
        except LeaseError as exc:
            warnings.append(f"{origin}: lease at line {line}: {exc}; ignored")
    if _unbalanced(text):
        warnings.append(f"{origin}: unterminated lease block at the end; ignored")
    return leases, warnings


def _unbalanced(text: str) -> bool:
    depth = 0
    for token in _tokens(text):
        depth += token == "{"
        depth -= token == "}"
    return depth != 0


#: Compiled on first use (``re`` keeps it), not at import: an apply without leases never does.
_TOKEN = r'"(?:[^"\\]|\\.)*"|#[^\n]*|[{};]|[^\s{};"#]+'


def _tokens(text: str) -> Iterator[str]:
    for match in re.finditer(_TOKEN, text):
        token = match.group(0)
        if not token.startswith("#"):
            yield token


def _blocks(text: str) -> Iterator[tuple[str, list[list[str]], int]]:
    """Top-level ``NAME { statement; ... }`` blocks: (name, statements, line). Nested blocks
    (a ``lease6``'s ``ia-na``) are flattened into their parent; an unterminated block is
    dropped (the caller warns)."""
    depth = 0
    name = ""
    line = 0
    statements: list[list[str]] = []
    current: list[str] = []
    for match in re.finditer(_TOKEN, text):
        token = match.group(0)
        if token.startswith("#"):
            continue
        if token == "{":
            if depth == 0:
                name, statements, current = (current[0] if current else ""), [], []
                line = text.count("\n", 0, match.start()) + 1
            else:
                current = []
            depth += 1
        elif token == "}":
            depth = max(0, depth - 1)
            if depth == 0:
                yield name, statements, line
            current = []
        elif token == ";":
            if depth > 0 and current:
                statements.append(current)
            current = []
        else:
            current.append(token)


def _dhclient_lease(statements: list[list[str]], origin: str, order: tuple[float, int]) -> Lease:
    ifname: str | None = None
    address: IPv4 | None = None
    prefixlen: int | None = None
    routers: tuple[IPv4, ...] = ()
    classless: tuple[DeclaredRoute, ...] | None = None
    expires: float | None = None
    for words in statements:
        head, rest = words[0], words[1:]
        if head == "interface" and rest:
            ifname = rest[0].strip('"')
        elif head == "fixed-address" and rest:
            address = _ipv4(rest[0], "fixed-address")
        elif head == "expire":
            expires = _dhclient_time(rest)
        elif head == "option" and len(rest) >= 2:
            name, value = rest[0], "".join(rest[1:])
            if name == "subnet-mask":
                prefixlen = _prefixlen(value)
            elif name == "routers":
                routers = tuple(_ipv4(v, "routers") for v in value.split(",") if v)
            elif name in ("rfc3442-classless-static-routes", "ms-classless-static-routes"):
                classless = _rfc3442([_octet(v) for v in value.split(",") if v])
            elif name in ("unknown-121", "unknown-249"):
                classless = _rfc3442([_octet(v, 16) for v in value.strip('"').split(":") if v])
    if address is None:
        raise LeaseError("no fixed-address")
    return Lease(origin, ifname, None, address, prefixlen, routers, classless, expires, order)


def _dhclient_time(words: list[str]) -> float | None:
    """``expire 0 2026/12/06 19:55:51`` (UTC), ``expire epoch 1765050951`` or ``never``."""
    if words[:1] == ["never"]:
        return None
    if words[:1] == ["epoch"] and len(words) >= 2 and words[1].isdigit():
        return float(words[1])
    if len(words) >= 3:
        from datetime import UTC, datetime  # dhclient's dated leases only (start-up time)

        try:
            moment = datetime.strptime(f"{words[1]} {words[2]}", "%Y/%m/%d %H:%M:%S")
        except ValueError as exc:
            raise LeaseError(f"unreadable expiry {' '.join(words)!r}") from exc
        return moment.replace(tzinfo=UTC).timestamp()
    raise LeaseError(f"unreadable expiry {' '.join(words)!r}")


def _rfc3442(octets: list[int]) -> tuple[DeclaredRoute, ...]:
    """Decode option 121: (width, significant octets of the destination, router)*."""
    routes: list[DeclaredRoute] = []
    i = 0
    while i < len(octets):
        width = octets[i]
        if width > 32:
            raise LeaseError(f"classless route with prefix length {width}")
        size = (width + 7) // 8
        if i + 1 + size + 4 > len(octets):
            raise LeaseError("truncated classless static routes")
        dst = bytes(octets[i + 1 : i + 1 + size]) + bytes(4 - size)
        router = bytes(octets[i + 1 + size : i + 5 + size])
        network = ipaddress.IPv4Network((IPv4(dst), width), strict=False)
        routes.append(DeclaredRoute(network, IPv4(router)))
        i += 5 + size
    return tuple(routes)


def parse_networkd(text: str, origin: str, ifindex: int, mtime: float) -> Lease:
    """A systemd-networkd lease file (``KEY=VALUE``); expiry: file time plus ``LIFETIME``."""
    values = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    if "ADDRESS" not in values:
        raise LeaseError("no ADDRESS")
    classless: tuple[DeclaredRoute, ...] | None = None
    if "CLASSLESS_ROUTES" in values:
        classless = tuple(
            _pair(item.split(",", 1)) for item in values["CLASSLESS_ROUTES"].split() if item
        )
    lifetime = values.get("LIFETIME", "")
    expires = mtime + int(lifetime) if lifetime.isdigit() else None
    return Lease(
        origin,
        None,
        ifindex,
        _ipv4(values["ADDRESS"], "ADDRESS"),
        _prefixlen(values["NETMASK"]) if "NETMASK" in values else None,
        tuple(_ipv4(v, "ROUTER") for v in values.get("ROUTER", "").split()),
        classless,
        expires,
        (mtime, 0),
    )


def parse_nm_device(text: str, origin: str, ifindex: int, mtime: float) -> Lease | None:
    """The ``[dhcp4]`` section of NetworkManager's device state file (its DHCP options, as
    1.42 writes them: ``dhcp4.ip_address``, ``dhcp4.subnet_mask``, ``dhcp4.routers``,
    ``dhcp4.rfc3442_classless_static_routes`` as ``dst/len gateway ...``, ``dhcp4.expiry`` in
    seconds since the epoch); None without one."""
    import configparser  # only where NetworkManager runs: not on every apply's import path

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise LeaseError(f"not a keyfile ({exc.message.splitlines()[0]})") from exc
    if not parser.has_section("dhcp4"):
        return None
    # NetworkManager 1.42 writes ``dhcp4.ip_address=``; the prefix is optional here.
    options = {key.removeprefix("dhcp4."): value for key, value in parser["dhcp4"].items()}
    if "ip_address" not in options:
        raise LeaseError("[dhcp4] has no ip_address")
    classless: tuple[DeclaredRoute, ...] | None = None
    words = options.get(
        "rfc3442_classless_static_routes", options.get("classless_static_routes", "")
    ).split()
    if words:
        if len(words) % 2:
            raise LeaseError("classless_static_routes is not pairs of destination and gateway")
        classless = tuple(_pair(words[i : i + 2]) for i in range(0, len(words), 2))
    expiry = options.get("expiry", "")
    expires = float(expiry) if expiry.isdigit() else None
    return Lease(
        origin,
        None,
        ifindex,
        _ipv4(options["ip_address"], "ip_address"),
        _prefixlen(options["subnet_mask"]) if "subnet_mask" in options else None,
        tuple(_ipv4(v, "routers") for v in options.get("routers", "").split()),
        classless,
        expires,
        (mtime, 0),
    )


def _pair(words: Sequence[str]) -> DeclaredRoute:
    if len(words) != 2:
        raise LeaseError(f"route {' '.join(words)!r} is not destination and gateway")
    try:
        return DeclaredRoute(ipaddress.IPv4Network(words[0], strict=False), IPv4(words[1]))
    except ValueError as exc:
        raise LeaseError(f"route {' '.join(words)!r}: {exc}") from exc


def _ipv4(text: str, what: str) -> IPv4:
    try:
        return IPv4(text.strip('"'))
    except ValueError as exc:
        raise LeaseError(f"{what} {text!r} is not an IPv4 address") from exc


def _prefixlen(mask: str) -> int:
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
    except ValueError as exc:
        raise LeaseError(f"subnet mask {mask!r} is not a netmask") from exc


def _octet(text: str, base: int = 10) -> int:
    try:
        value = int(text, base)
    except ValueError as exc:
        raise LeaseError(f"{text!r} is not an octet") from exc
    if not 0 <= value <= 255:
        raise LeaseError(f"{text!r} is not an octet")
    return value


# -- reading (I/O) ---------------------------------------------------------------------------
@record
class LeaseReader:
    """Reads the leases of a host below ``root``; a file already read is parsed again only
    when its size or modification time changed (the agent reads on every repair)."""

    root: Path = Path("/")
    extra: tuple[StrPath, ...] = ()
    """More dhclient lease files or globs (absolute, not below the root)."""
    processes: bool = True
    """Also read the lease file of each dhclient running in this network namespace."""
    process_every: float = 0.0
    """Look for dhclient processes at most this often (seconds; 0: on every read). A scan of
    /proc costs a few ms, too much for every repair of the agent."""
    _procs: tuple[float, list[str]] | None = field(default=None, repr=False)
    _parsed: dict[str, tuple[tuple[int, int], list[Lease], list[str]]] = field(
        default_factory=dict, repr=False
    )
    _listings: Listings = field(default_factory=dict, repr=False)
    """The dhclient folders' listings (:func:`multihome.leasefiles.dhclient_files`)."""

    def read(self, links: Iterable[Link], now: float | None = None) -> Leases:
        """The newest unexpired lease of each of ``links``, and warnings for the rest."""
        now = time.time() if now is None else now
        links = tuple(links)
        by_index = {link.index: link.name for link in links}
        names = set(by_index.values())
        found: dict[str, Lease] = {}
        warnings: list[str] = []
        for lease in self._all(links, warnings):
            name = lease.ifname if lease.ifname is not None else by_index.get(lease.ifindex or -1)
            if name is None or name not in names or lease.expired(now):
                continue
            if name not in found or lease.order >= found[name].order:
                found[name] = lease
        return Leases(found, tuple(warnings))

    def _all(self, links: Sequence[Link], warnings: list[str]) -> Iterator[Lease]:
        seen: set[str] = set()
        for path in self._dhclient_files():
            if path in seen:
                continue
            seen.add(path)
            yield from self._parse(path, warnings, _dhclient_file)
        # Each folder listed once, not a stat per link and folder (the agent reads on every
        # repair: 34 failed stats at 16 ports on a host without networkd or NetworkManager).
        folders = []
        for base, parse in ((NETWORKD_LEASES, _networkd_one), (NM_DEVICES, _nm_one)):
            folder = rooted(self.root, base)
            try:
                names = frozenset(os.listdir(folder))
            except OSError:
                continue
            folders.append((folder, names, parse))
        for link in links:
            for folder, names, parse in folders:
                if str(link.index) in names:
                    path = join(folder, str(link.index))
                    yield from self._parse(path, warnings, _by_index(parse, link.index))

    def files(self) -> list[tuple[str, _ParseFn]]:
        """Every lease file this reader may read, whatever the links (each with its parser):
        the dhclient files, and every networkd and NetworkManager file (named by ifindex)."""
        found: list[tuple[str, _ParseFn]] = [(p, _dhclient_file) for p in self._dhclient_files()]
        ones = {NETWORKD_LEASES: _networkd_one, NM_DEVICES: _nm_one}
        found += [
            (path, _by_index(ones[base], index)) for path, base, index in indexed_files(self.root)
        ]
        return found

    def signature(self) -> str:
        """The files' paths, sizes and modification times: it changes when a lease does
        (:func:`multihome.leasefiles.host_signature` computes it without a reader)."""
        return signature(path for path, _parse in self.files())

    def next_expiry(self, now: float | None = None) -> float | None:
        """When the first lease still valid at ``now`` expires (None: none does): the
        leases, and so the ports' facts, may change then without a file changing."""
        now = time.time() if now is None else now
        warnings: list[str] = []
        expiries = [
            lease.expires
            for path, parse in self.files()
            for lease in self._parse(path, warnings, parse)
            if lease.expires is not None and lease.expires > now
        ]
        return min(expiries, default=None)

    def scan_due(self, ahead: float = 0.0) -> bool:
        """The dhclient processes are to be looked for again, now or within ``ahead``
        seconds (``process_every`` passed since the last scan): a read scans /proc when it
        is due, unless :meth:`scan` did it first."""
        return self.processes and (
            self._procs is None or time.monotonic() - self._procs[0] >= self.process_every - ahead
        )

    def scan(self) -> None:
        """Look for the dhclient processes now (the agent, idle, when :meth:`scan_due`: so
        that its next repair does not, before its first change)."""
        self._procs = (time.monotonic(), dhclient_lease_files())

    def _dhclient_files(self) -> Iterator[str]:
        processes: list[str] = []
        if self.processes:
            if self.scan_due():
                self.scan()
            assert self._procs is not None
            processes = self._procs[1]
        yield from dhclient_files(self.root, self.extra, processes, self._listings)

    def _parse(self, path: str, warnings: list[str], parse: _ParseFn) -> Iterator[Lease]:
        try:
            stat = os.stat(path)
        except OSError:
            return
        stamp = (stat.st_size, stat.st_mtime_ns)
        cached = self._parsed.get(path)
        if cached is None or cached[0] != stamp:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
            except OSError as exc:
                warnings.append(f"{path}: cannot read it ({exc.strerror}); ignored")
                return
            try:
                leases, problems = parse(text, str(path), stat.st_mtime)
            except LeaseError as exc:
                leases, problems = [], [f"{path}: {exc}; ignored"]
            cached = (stamp, leases, problems)
            self._parsed[path] = cached
        warnings.extend(cached[2])
        yield from cached[1]


def _by_index(parse: _ParseOne, ifindex: int) -> _ParseFn:
    def wrapped(text: str, origin: str, mtime: float) -> _Parsed:
        return parse(text, origin, ifindex, mtime)

    return wrapped


def _dhclient_file(text: str, origin: str, mtime: float) -> _Parsed:
    return parse_dhclient(text, f"dhclient lease {origin}", mtime)


def _networkd_one(text: str, origin: str, ifindex: int, mtime: float) -> _Parsed:
    return [parse_networkd(text, f"systemd-networkd lease {origin}", ifindex, mtime)], []


def _nm_one(text: str, origin: str, ifindex: int, mtime: float) -> _Parsed:
    lease = parse_nm_device(text, f"NetworkManager lease {origin}", ifindex, mtime)
    return ([] if lease is None else [lease]), []
