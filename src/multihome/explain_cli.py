"""``multihome explain``: how the kernel routes one flow, rule by rule, and whether the
kernel agrees (the I/O around the pure :mod:`multihome.explain`)."""

from __future__ import annotations

from pathlib import Path

#: The per-interface IPv4 settings route decisions depend on beyond what the state carries.
ROUTE_KNOBS = ("forwarding", "rp_filter", "accept_local", "src_valid_mark")


def read_route_sysctls(ifnames: list[str], proc_sys: Path = Path("/proc/sys")) -> dict[str, str]:
    """``net.ipv4.conf.{all,IF}.{forwarding,rp_filter,...}`` of this namespace."""
    values: dict[str, str] = {}
    for ifname in ["all", *ifnames]:
        for knob in ROUTE_KNOBS:
            path = proc_sys / "net/ipv4/conf" / ifname / knob
            try:
                values[f"net.ipv4.conf.{ifname}.{knob}"] = path.read_text().strip()
            except OSError:
                continue
    return values


__all__ = ["read_route_sysctls"]
