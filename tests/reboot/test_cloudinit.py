"""First boot under real cloud-init: the Debian 12 guest boots with Debian's ``cloud-init`` and
an OpenStack config drive holding what the example topology's server gets (its ports' MACs,
multihome's user-data); nobody logs in. cloud-init finishes without errors, the policy is in
place (checked with the host's ``ip -j`` in the guest's namespace), ``multihome doctor`` finds
nothing, and a second boot keeps it from the persisted configuration. Once with ``install:
pip`` from a wheel directory (the guest has no internet), once with ``install: none`` (an
image with multihome baked in). One guest per install mode, shared by the tests of the mode."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cloudinit_guest import (
    EXAMPLE,
    GUEST_WHEELS,
    dependency_wheels,
    multihome_wheel,
    prepare,
    rootfs_tarball_cloudinit,
)
from persist_util import LEASES, MULTIHOME, need, need_root, run, start_dnsmasq
from reboot_guest import (
    BAND,
    GATEWAY,
    Expected,
    Guest,
    guest_environment,
    policy_problems,
    wait_for_policy,
)

from multihome.cloud.topology import load_topology

pytestmark = pytest.mark.slow

#: A first boot runs cloud-init's four stages, apt (offline) and pip: ~40 s on an idle machine
#: with 2 cores, several times that on a loaded one.
BOOT_TIMEOUT = 420
#: The sysctls of rule 5 of docs/design.md, per port.
PORT_SYSCTLS = {"arp_ignore": "1", "arp_announce": "2", "arp_filter": "1", "rp_filter": "2"}
#: The destinations of the routes the lab's DHCP gives each port (the prefix, the gateway and
#: the DHCP server that option 121 routes through, the metadata route): rule band+0 for each.


@dataclass
class Booted:
    """A guest after its first boot under cloud-init, and what it was given."""

    guest: Guest
    install: str
    instance: str
    user_data: str
    first_boot: float
    """Seconds from starting nspawn to cloud-init's final stage being done."""
    cloud: Path
    """The lab's DHCP server's directory (its log shows each DHCPACK)."""


def topology_file(workdir: Path, install: str) -> Path:
    """The how-to's scenario 4 (examples/), told how the air-gapped guest gets multihome."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["guest"] = {"install": install, "persist_backend": "auto"}
    if install == "pip":
        doc["guest"].update(package="multihome", wheels=GUEST_WHEELS)
    path = workdir / f"topology-{install}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def cloud_init_status(guest: Guest, timeout: float = BOOT_TIMEOUT) -> dict[str, object]:
    """``cloud-init status --format json`` once cloud-init has finished (``--wait``)."""
    guest.sh("cloud-init", "status", "--wait", check=False, timeout=timeout)
    proc = guest.sh("cloud-init", "status", "--format", "json", check=False)
    status: dict[str, object] = json.loads(proc.stdout)
    return status


def expected_policy(guest: Guest) -> Expected:
    """The policy of docs/design.md, section 5, for eth0 and eth1 on the lab's subnet: its
    rules per port (the suppress rule once), each port's table (the one its ``oif`` rule
    names: an id is derived from the MAC, any id in the range will do), rule 5's sysctls."""
    tables = {}
    for rule in guest.ip("rule"):
        if int(rule["priority"]) == BAND.start + 3 and rule.get("oif") in guest.ports:
            tables[rule["oif"]] = int(rule["table"])
    assert sorted(tables) == sorted(guest.ports), f"no oif rule per port: {guest.ip('rule')}"
    rules: list[tuple[object, ...]] = [(BAND.start + 1, "all", None, None, None, "main", 0)]
    sysctls = {}
    for port, table in tables.items():
        t = str(table)
        assert 10000 <= table <= 10999, f"{port}: table {table} outside multihome's range"
        rules += [
            (BAND.start, LEASES[port], None, None, None, t, None),  # the table first
            (BAND.start + 3, "all", None, None, port, t, None),
            (BAND.start + 4, "all", None, port, None, t, None),
        ]
        sysctls.update({f"net.ipv4.conf.{port}.{k}": v for k, v in PORT_SYSCTLS.items()})
    return Expected(sorted(rules), tables, sysctls)


def doctor(guest: Guest) -> dict[str, object]:
    proc = guest.sh("multihome", "doctor", "--json", check=False)
    found: dict[str, object] = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return found


@pytest.fixture(scope="module")
def image() -> Path:
    """The reboot tests' guest plus Debian's cloud-init (built on first use, ~60 s)."""
    need_root()
    need("debootstrap", "tar", "systemd-nspawn", "nsenter", "unshare", "dnsmasq")
    return rootfs_tarball_cloudinit()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """multihome's wheel (this checkout) and its runtime dependencies' (cached)."""
    need_root()
    deps = sorted(dependency_wheels().glob("*.whl"))
    return [*deps, multihome_wheel(tmp_path_factory.mktemp("wheel"))]


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("pip", marks=pytest.mark.xdist_group("cloudinit-pip")),
        pytest.param("none", marks=pytest.mark.xdist_group("cloudinit-none")),
    ],
)
def booted(
    request: pytest.FixtureRequest,
    image: Path,
    wheels: list[Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Booted]:
    """The guest after its first boot (cloud-init done); powered off and removed afterwards."""
    install: str = request.param
    workdir = tmp_path_factory.mktemp(f"cloudinit-{install}")
    topology = topology_file(workdir, install)
    user_data = run(MULTIHOME, "cloud", "user-data", "-f", str(topology)).stdout
    with guest_environment(workdir, image, baked=install == "none") as guest:
        # Neutron's lease time (dhcp_lease_duration 86400): no renew during the test, as none
        # comes in a cloud's first 12 hours (the renew is test_first_boot_survives_a_renew's)
        start_dnsmasq(guest.switch, list(guest.ports), workdir / "cloud", lease="24h")
        instance = prepare(
            guest, load_topology(topology), user_data, wheels if install == "pip" else []
        )
        if install == "pip":
            assert not (guest.root / "usr/local/bin/multihome").exists()
        guest.boot(timeout=BOOT_TIMEOUT)
        cloud_init_status(guest)
        blame = guest.sh("systemd-analyze", "blame", check=False).stdout.splitlines()
        print(f"\ncloud-init[{install}]: {'; '.join(b.strip() for b in blame if 'cloud' in b)}")
        booted = Booted(
            guest, install, instance, user_data, time.monotonic() - guest.started, workdir / "cloud"
        )
        yield booted
        print(f"\ncloud-init[{install}]: first boot to cloud-init done {booted.first_boot:.1f}s")


def test_cloud_init_ran_multihomes_user_data_without_errors(booted: Booted) -> None:
    """cloud-init took the config drive (ConfigDrive datasource, seed directory), configured
    both ports from network_data.json by MAC, ran every stage to the end without an error, and
    its runcmd installed (pip: from the wheel directory only) and ran multihome."""
    guest = booted.guest
    status = cloud_init_status(guest)
    assert status["status"] == "done", status
    assert status["errors"] == [], status
    assert "configdrive" in str(status["datasource"]).lower(), status
    result = json.loads(guest.sh("cat", "/run/cloud-init/result.json").stdout)
    assert result["v1"]["errors"] == [], result
    assert "seed" in result["v1"]["datasource"], result  # the seed directory, no block device
    assert guest.sh("cloud-init", "query", "instance_id").stdout.strip() == booted.instance
    long = guest.sh("cloud-init", "status", "--long").stdout
    assert "status: done" in long, long
    # network_data.json rendered by cloud-init's networkd renderer, matched by MAC
    for port in guest.ports:
        unit = guest.sh("cat", f"/etc/systemd/network/10-cloud-init-{port}.network").stdout
        assert "MACAddress=" in unit and "DHCP=ipv4" in unit, unit
    # the user-data it ran is multihome's, and it ran it as written
    assert guest.sh("cat", "/var/lib/cloud/instance/user-data.txt").stdout == booted.user_data
    script = guest.sh("cat", "/var/lib/cloud/instance/scripts/runcmd").stdout
    program = "multihome" if booted.install == "none" else "/usr/local/bin/multihome"
    assert f"'{program}' 'apply'" in script or f"{program} apply" in script, script
    if booted.install == "pip":
        assert f"--no-index' '--find-links' '{GUEST_WHEELS}'" in script, script
        link = guest.sh("readlink", "/usr/local/bin/multihome").stdout.strip()
        assert link == "/opt/multihome/bin/multihome"
        version = guest.sh("/opt/multihome/bin/pip", "show", "multihome").stdout
        assert "Location: /opt/multihome/lib/python3.11/site-packages" in version, version


def test_policy_in_place_and_doctor_finds_nothing(booted: Booted) -> None:
    """After the first boot, with nobody logged in: every rule, table, default and sysctl of
    the policy, checked with ``ip -j`` (eth1's replies leave through eth1), nothing doubled;
    ``multihome doctor`` is healthy (persisted, nothing pending)."""
    guest = booted.guest
    expected = expected_policy(guest)
    assert policy_problems(guest, expected) == []
    found = doctor(guest)
    assert found["problems"] == [], found
    manifest = json.loads(guest.sh("cat", "/var/lib/multihome/persist.json").stdout)
    assert manifest["backend"] == "networkd", manifest


def test_first_boot_survives_a_renew(booted: Booted) -> None:
    """A DHCP renew during the first boot (after 12 hours with Neutron's lease): cloud-init's
    runcmd `multihome persist` made the running networkd load the files it wrote (networkctl
    reload), so the renew keeps eth1's default in eth1's table, not in main (the how-to's
    bug), without a reboot."""
    guest = booted.guest
    expected = expected_policy(guest)
    assert policy_problems(guest, expected) == []
    output = guest.sh("cat", "/var/log/cloud-init-output.log").stdout
    assert "effective now: systemd-networkd reloaded" in output, output
    log = booted.cloud / "dnsmasq.log"
    before = log.read_text().count("DHCPACK")
    for port in guest.ports:
        guest.sh("networkctl", "renew", port)
    wait_for_acks = time.monotonic() + 10
    while log.read_text().count("DHCPACK") < before + 2 and time.monotonic() < wait_for_acks:
        time.sleep(0.1)
    assert log.read_text().count("DHCPACK") >= before + 2  # both renews reached the server
    problems: list[str] = []
    deadline = time.monotonic() + 3  # networkd has the new lease's routes within a second
    while not problems and time.monotonic() < deadline:
        problems = policy_problems(guest, expected)
        time.sleep(0.1)
    assert problems == []


def test_second_boot_keeps_the_policy(booted: Booted) -> None:
    """Power off and boot again (fresh namespaces and veths, same MACs): cloud-init finds the
    same instance and runs no per-instance step again, yet the persisted configuration puts
    the same policy back; doctor still finds nothing."""
    guest = booted.guest
    expected = expected_policy(guest)
    log = "/var/log/cloud-init-output.log"
    applies = guest.sh("grep", "-c", "^applied [0-9]* change", log).stdout
    assert applies == "1\n", applies  # multihome apply's summary line, once
    guest.poweroff()
    guest.boot(timeout=BOOT_TIMEOUT)
    status = cloud_init_status(guest)
    assert status["status"] == "done" and status["errors"] == [], status
    wait_for_policy(guest, expected)
    assert policy_problems(guest, expected) == []
    assert guest.defaults("main") == [(GATEWAY, "eth0")]
    again = guest.sh("grep", "-c", "^applied [0-9]* change", log).stdout
    assert again == applies  # runcmd is per instance: not run again
    assert doctor(guest)["problems"] == []
    print(
        f"\ncloud-init[{booted.install}]: second boot {guest.times[-1].boot:.1f}s, "
        f"policy {guest.times[-1].policy:.1f}s"
    )
