"""portconfig: which configuration configures each port, read from files under a root as the
daemons read them, and why a backend's files would configure nothing (``gaps``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from multihome.errors import InputError
from multihome.portconfig import gaps, read_port_config

MAC0, MAC1 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"
PORTS = (("eth0", MAC0), ("eth1", MAC1))
DHCP = "[Match]\nName={name}\n\n[Network]\nDHCP=ipv4\n"
PROFILE = (
    "[connection]\nid={id}\ntype=ethernet\ninterface-name={name}\n{extra}\n[ipv4]\nmethod=auto\n"
)


def write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def plain_networkd(root: Path) -> None:
    """The issue's guest: ports configured by plain networkd files, no netplan YAML."""
    for name in ("eth0", "eth1"):
        write(root, f"/etc/systemd/network/50-dhcp-{name}.network", DHCP.format(name=name))


def test_networkd_takes_the_first_match_in_lexical_order_across_directories(
    tmp_path: Path,
) -> None:
    """networkd's choice: the lowest basename over /etc, /run and /usr/lib wins, whatever its
    directory; a name in /etc masks the same name in /usr/lib."""
    plain_networkd(tmp_path)
    write(tmp_path, "/usr/lib/systemd/network/20-any.network", "[Match]\nName=eth*\n")
    write(tmp_path, "/usr/lib/systemd/network/10-eth1.network", "[Match]\nName=eth1\n")
    write(tmp_path, "/etc/systemd/network/10-eth1.network", "[Match]\nName=nothing\n")
    found = read_port_config(tmp_path, PORTS)
    assert found.networkd["eth0"].path == "/usr/lib/systemd/network/20-any.network"
    assert found.networkd["eth1"].path == "/usr/lib/systemd/network/20-any.network"
    write(tmp_path, "/run/systemd/network/05-mac.network", f"[Match]\nMACAddress={MAC1}\n")
    assert read_port_config(tmp_path, PORTS).networkd["eth1"].name == "05-mac.network"


def test_netplan_is_refused_for_ports_plain_networkd_files_configure(tmp_path: Path) -> None:
    """Issue 17: 50-dhcp-eth*.network and no netplan YAML: netplan configures neither port;
    the fix names the networkd file and --backend networkd, which itself has no gap."""
    plain_networkd(tmp_path)
    found = read_port_config(tmp_path, PORTS)
    missing = gaps("netplan", ["eth0", "eth1"], found)
    assert [g.port for g in missing] == ["eth0", "eth1"]
    assert "/etc/systemd/network/50-dhcp-eth1.network" in missing[1].problem
    assert missing[1].fix == "use --backend networkd"
    assert gaps("networkd", ["eth0", "eth1"], found) == []
    assert [g.port for g in gaps("networkmanager", ["eth0", "eth1"], found)] == ["eth0", "eth1"]


def test_netplan_drop_in_is_refused_when_an_earlier_network_file_matches(tmp_path: Path) -> None:
    """netplan names eth1, but /etc/systemd/network/05-eth1.network sorts before netplan's
    10-netplan-eth1.network: multihome's drop-in would never apply."""
    write(tmp_path, "/etc/netplan/50-cloud-init.yaml", "network:\n  ethernets:\n    eth1: {}\n")
    write(tmp_path, "/etc/systemd/network/05-eth1.network", DHCP.format(name="eth1"))
    missing = gaps("netplan", ["eth1"], read_port_config(tmp_path, PORTS))
    assert len(missing) == 1 and "05-eth1.network" in missing[0].problem
    (tmp_path / "etc/systemd/network/05-eth1.network").rename(
        tmp_path / "etc/systemd/network/50-eth1.network"
    )
    assert gaps("netplan", ["eth1"], read_port_config(tmp_path, PORTS)) == []


def test_networkmanager_profile_with_a_higher_priority_outranks_multihome(
    tmp_path: Path,
) -> None:
    """A profile bound to eth1 with autoconnect-priority 100 would activate instead of
    multihome-eth1 (50); at 0, or with autoconnect=false, it would not."""
    conn = "/etc/NetworkManager/system-connections/cloud-eth1.nmconnection"
    write(
        tmp_path,
        conn,
        PROFILE.format(id="cloud-eth1", name="eth1", extra="autoconnect-priority=100"),
    )
    missing = gaps("networkmanager", ["eth1"], read_port_config(tmp_path, PORTS))
    assert len(missing) == 1 and "cloud-eth1" in missing[0].problem and "100" in missing[0].problem
    write(tmp_path, conn, PROFILE.format(id="cloud-eth1", name="eth1", extra=""))
    assert gaps("networkmanager", ["eth1"], read_port_config(tmp_path, PORTS)) == []
    extra = "autoconnect-priority=100\nautoconnect=false"
    write(tmp_path, conn, PROFILE.format(id="cloud-eth1", name="eth1", extra=extra))
    assert gaps("networkmanager", ["eth1"], read_port_config(tmp_path, PORTS)) == []


def test_networkd_is_refused_for_a_port_only_networkmanager_configures(tmp_path: Path) -> None:
    """No .network file matches eth1 and a NetworkManager profile names it: multihome's own
    .network file would do nothing; the fix is --backend networkmanager."""
    write(
        tmp_path,
        "/etc/NetworkManager/system-connections/cloud-eth1.nmconnection",
        PROFILE.format(id="cloud-eth1", name="eth1", extra=""),
    )
    missing = gaps("networkd", ["eth0", "eth1"], read_port_config(tmp_path, PORTS))
    assert [g.port for g in missing] == ["eth1"]
    assert missing[0].fix.endswith("use --backend networkmanager")


def test_ports_nothing_configures_pass_every_backend(tmp_path: Path) -> None:
    """A port that nothing configures yet gets multihome's own definition: no gap anywhere."""
    found = read_port_config(tmp_path, PORTS)
    for backend in ("networkd", "netplan", "networkmanager", "ifcfg", "systemd"):
        assert gaps(backend, ["eth0", "eth1"], found) == [], backend


def test_a_broken_netplan_file_is_named(tmp_path: Path) -> None:
    """Unreadable netplan YAML (bad syntax, not UTF-8) is an InputError naming the file."""
    write(tmp_path, "/etc/netplan/50-bad.yaml", "network: [\n")
    with pytest.raises(InputError, match=r"50-bad\.yaml"):
        read_port_config(tmp_path, PORTS)
    (tmp_path / "etc/netplan/50-bad.yaml").write_bytes(b"network: \xff\n")
    with pytest.raises(InputError, match=r"50-bad\.yaml"):
        read_port_config(tmp_path, PORTS)
