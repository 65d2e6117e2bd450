"""Router advertisements for namespace tests: radvd (Debian's, as Neutron's L3 agent runs it)
in a router namespace, and waiting for a guest's SLAAC addresses and RA defaults.

Shared by tests/netns (the IPv6 policy) and tests/persist (the daemons' IPv6 persistence).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path


def radvd_conf(
    interfaces: Iterable[tuple[str, str]], lifetime: int | None = None, *, managed: bool = False
) -> str:
    """radvd.conf advertising each ``(interface, prefix/len)`` every 3-4 s (on-link,
    autonomous; several prefixes of one interface in one block, as radvd wants them);
    ``lifetime``: the router lifetime (radvd's default: 3 x the interval); ``managed``: a
    DHCPv6-stateful subnet as Neutron's radvd announces it (the managed and other-config
    flags, the prefix on-link but not autonomous: addresses come from DHCPv6 only)."""
    extra = "" if lifetime is None else f" AdvDefaultLifetime {lifetime};"
    if managed:
        extra += " AdvManagedFlag on; AdvOtherConfigFlag on;"
    autonomous = "off" if managed else "on"
    prefixes: dict[str, list[str]] = {}
    for ifname, prefix in interfaces:
        prefixes.setdefault(ifname, []).append(prefix)
    return "".join(
        f"interface {ifname} {{ AdvSendAdvert on; MinRtrAdvInterval 3; MaxRtrAdvInterval 4;"
        + extra
        + "".join(f" prefix {p} {{ AdvOnLink on; AdvAutonomous {autonomous}; }};" for p in mine)
        + " };\n"
        for ifname, mine in prefixes.items()
    )


def start_radvd(ns: str, conf: Path, text: str) -> subprocess.Popen[bytes]:
    """Write ``text`` to ``conf`` and run radvd in the foreground in ``ns`` (the caller stops
    it by its pid: terminating radvd makes it send a final advertisement with router
    lifetime 0, as a router that leaves does)."""
    conf.write_text(text)
    pidfile = conf.with_suffix(".pid")
    return subprocess.Popen(
        [*f"ip netns exec {ns} radvd -n -m stderr -u root -C {conf} -p {pidfile}".split()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` (by its own pid) and reap it."""
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _ipj(ns: str, *args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        ["ip", "-n", ns, "-j", *args], check=True, capture_output=True, text=True
    ).stdout
    found: list[dict[str, object]] = json.loads(out or "[]")
    return found


def global_address(ns: str, ifname: str) -> str | None:
    """The interface's first global IPv6 address past DAD, if any."""
    for entry in _ipj(ns, "-6", "addr", "show", "dev", ifname, "scope", "global"):
        for a in entry["addr_info"]:  # type: ignore[attr-defined]
            if a.get("local") and not a.get("tentative") and not a.get("dadfailed"):
                return str(a["local"])
    return None


def ra_router(ns: str, ifname: str, table: str = "main") -> str | None:
    """The router of the interface's ``proto ra`` default in ``table``, if any."""
    routes = _ipj(ns, "-6", "route", "show", "table", table, "default", "dev", ifname)
    return next((str(r["gateway"]) for r in routes if r.get("protocol") == "ra"), None)


def wait_for_slaac(ns: str, ifnames: Iterable[str], timeout: float = 20.0) -> dict[str, str]:
    """Until every interface has a global address past DAD and its router-advertised default
    in main; returns each one's address."""
    names = list(ifnames)
    deadline = time.monotonic() + timeout
    while True:
        found = {n: a for n in names if (a := global_address(ns, n)) and ra_router(ns, n)}
        missing = [n for n in names if n not in found]
        if not missing:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no SLAAC address or RA default on {missing} in {ns}")
        time.sleep(0.2)
