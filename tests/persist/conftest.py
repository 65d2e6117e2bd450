"""Fixtures of the persistence tests: namespaces and a DHCP-served lab.

The helpers live in ``persist_util`` (a uniquely named module: test modules of package-less
directories importing from ``conftest`` get another directory's conftest when pytest collects
several areas). Every namespace is named ``mhpersist-<random>-...`` and removed (with every
process in it) also when a test fails. Nothing here touches the host's own network.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from persist_util import MACS, Lab, Namespaces, need, need_root, run


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    """A namespace factory; everything it made is removed after the test."""
    need_root()
    spaces = Namespaces(f"mhpersist-{secrets.token_hex(3)}")
    try:
        yield spaces
    finally:
        spaces.cleanup()


@pytest.fixture
def make_lab(namespaces: Namespaces, tmp_path: Path) -> Callable[[int], Lab]:
    """Build a lab with ``n`` ports: VM namespace, switch namespace with br0, dnsmasq."""
    need("dnsmasq")

    def build(n: int) -> Lab:
        vm = namespaces.add("vm")
        sw = namespaces.add("sw")
        run("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        ports = [f"eth{i}" for i in range(n)]
        for i, port in enumerate(ports):
            run(
                "ip",
                "link",
                "add",
                port,
                "netns",
                vm,
                "address",
                MACS[port],
                "type",
                "veth",
                "peer",
                f"p{i}",
                "netns",
                sw,
            )
            run("ip", "-n", sw, "link", "set", f"p{i}", "master", "br0")
            run("ip", "-n", sw, "link", "set", f"p{i}", "up")
        run("ip", "-n", sw, "link", "set", "br0", "up")
        for addr in ("192.168.0.1/24", "192.168.0.100/24", "192.168.0.2/24"):
            run("ip", "-n", sw, "addr", "add", addr, "dev", "br0")
        lab = Lab(vm, sw, ports, tmp_path / "lab", namespaces)
        lab.workdir.mkdir()
        lab.start_dhcp()
        return lab

    return build
