"""Every persistence backend writes the policy's per-port sysctls to sysctl.d.

Found by the reboot tests: after persist and a reboot the rules and tables were back, but the
ARP-flux and reverse-path settings (docs/design.md, rule 5) were not: networkd, netplan and
NetworkManager have no setting for them, and no renderer wrote them anywhere.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hosts import host, port

from multihome.config import Config
from multihome.model import HostState
from multihome.policy import compute_policy
from multihome.render import REGISTRY, build_input
from multihome.render.base import SYSCTL_PATH

CONFIG = Config()


def parse_sysctl_d(text: str) -> dict[str, str]:
    """sysctl.d(5): ``key = value`` lines, comments with '#' or ';'."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";")):
            key, value = (part.strip() for part in line.split("=", 1))
            values[key] = value
    return values


@pytest.mark.parametrize("backend", sorted(REGISTRY))
def test_every_backend_persists_the_policys_sysctls(howto: HostState, backend: str) -> None:
    """The sysctl.d file says exactly what `multihome apply` sets, for both ports."""
    desired = compute_policy(howto, CONFIG)
    files = REGISTRY[backend].render(build_input(howto, desired))
    written = parse_sysctl_d(files[PurePosixPath(SYSCTL_PATH)].content)
    assert written == {s.name: s.value for s in desired.sysctls}
    assert {"net.ipv4.conf.eth1.arp_ignore", "net.ipv4.conf.eth0.rp_filter"} <= set(written)


def test_a_single_port_host_gets_no_sysctl_file() -> None:
    """One port needs no policy, and so no sysctls: no file (persist removes an old one)."""
    single = host(port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100))
    desired = compute_policy(single, CONFIG)
    assert desired.sysctls == ()
    files = REGISTRY["networkd"].render(build_input(single, desired))
    assert PurePosixPath(SYSCTL_PATH) not in files
