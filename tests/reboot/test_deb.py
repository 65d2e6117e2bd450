"""The Debian package (`make deb`) in the booted Debian 12 guest of the reboot tests.

Built from this checkout by ``packaging/build-deb``, installed with apt into a guest that has
Debian's own python3-click and python3-yaml and no pyroute2 (purged first: multihome needs
none), then `multihome apply` and `multihome persist --backend systemd` inside; after a
reboot the policy is back through the packaged ``/usr/bin/multihome`` (the unit names it),
and the packaged agent, enabled by hand, runs. `apt remove` leaves no multihome unit enabled
and none of persist's files; `apt purge` leaves the file system as it was before the install
(file lists compared, below the places that change by themselves)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reboot_guest import (
    GATEWAY,
    REPO,
    Guest,
    expected_from_plan,
    need,
    policy_problems,
    run,
    wait_for_policy,
    wait_until,
)

pytestmark = pytest.mark.slow

#: What changes by itself while a system runs or apt works (logs, caches, dpkg's and apt's own
#: databases, systemd's clocks), and the guest's mounts: not compared before and after.
VOLATILE = (
    "proc",
    "sys",
    "dev",
    "run",
    "tmp",
    "var/tmp",
    "var/log",
    "var/cache",
    "var/lib/apt",
    "var/lib/dpkg",
    "var/lib/systemd/timers",
    "var/lib/systemd/random-seed",
    "var/lib/systemd/catalog",
    "var/lib/dhcp",
    "etc/ld.so.cache",
)
UNITS = ("multihome@eth0.service", "multihome@eth1.service", "multihome-agent.service")


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """multihome_<version>_all.deb built from this checkout (``packaging/build-deb``, what
    `make deb` runs; about 20 s)."""
    need("dpkg-buildpackage", "dh", "dh_python3", "pandoc")
    out = tmp_path_factory.mktemp("deb")
    proc = run(str(REPO / "packaging/build-deb"), str(out), timeout=600)
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.name.startswith("multihome_") and path.name.endswith("_all.deb"), path
    yield path
    shutil.rmtree(out, ignore_errors=True)


def files(root: Path) -> set[str]:
    """Every path below the guest's root (as seen from the host), the volatile ones aside."""
    found: set[str] = set()
    skip = {str(root / v) for v in VOLATILE}
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]
        rel = os.path.relpath(top, root)
        found.update(os.path.normpath(os.path.join(rel, n)) for n in [*dirs, *names])
    return found


def enabled_units(guest: Guest) -> list[str]:
    """multihome's units systemd calls enabled, and any link to one in a ``.wants`` folder."""
    listed = guest.sh(
        "systemctl", "list-unit-files", "multihome*", "--state=enabled", "--no-legend", check=False
    ).stdout.split()
    links = [
        str(p.relative_to(guest.root))
        for p in (guest.root / "etc/systemd/system").glob("*.wants/multihome*")
    ]
    return sorted(u for u in listed if u.startswith("multihome")) + links


def install(guest: Guest, deb: Path) -> None:
    """apt installs the package: the program on PATH, man pages, the configuration example,
    the units installed and not enabled."""
    guest.sh("apt-get", "install", "-y", "-q", "--no-install-recommends", f"/root/{deb.name}")
    assert guest.sh("sh", "-c", "command -v multihome").stdout.strip() == "/usr/bin/multihome"
    version = guest.sh("multihome", "--version").stdout
    assert deb.name.split("_")[1] in version
    assert (guest.root / "usr/share/man/man8/multihome-persist.8.gz").is_file()
    assert "tables:" in (guest.root / "etc/multihome/config.yaml").read_text()
    states = guest.sh("systemctl", "is-enabled", "multihome-agent.service", check=False)
    assert states.stdout.strip() == "disabled"
    assert (guest.root / "lib/systemd/system/multihome@.service").is_file()
    assert enabled_units(guest) == []


def test_package_installs_persists_survives_reboot_and_goes_cleanly(
    guest: Guest, deb: Path
) -> None:
    """install -> apply -> persist -> reboot: policy back, units active; remove: nothing
    enabled, persist's files gone, the conffile kept; purge: the files of before the
    install, exactly."""
    started = time.monotonic()
    # The package, not the repository's wrapper, is the multihome under test here.
    (guest.root / "usr/local/bin/multihome").unlink()
    shutil.rmtree(guest.root / "opt/multihome")
    shutil.copy(deb, guest.root / "root" / deb.name)
    guest.configure_networkd()
    guest.boot()
    wait_until(
        lambda: guest.defaults("main") == [(GATEWAY, "eth0"), (GATEWAY, "eth1")],
        30,
        "DHCP defaults of eth0 and eth1 in main",
        guest,
    )
    guest.sh("dpkg", "--purge", "python3-pyroute2")
    before = files(guest.root)
    assert len(before) > 5000 and "usr/bin/python3" in before  # the walk sees the guest

    install(guest, deb)

    plan = guest.sh("multihome", "plan", "--source", "kernel", "--json")
    expected = expected_from_plan(json.loads(plan.stdout))
    assert set(expected.tables) == {"eth0", "eth1"}
    guest.sh("multihome", "apply")
    assert policy_problems(guest, expected) == []
    out = guest.sh("multihome", "persist", "--backend", "systemd").stdout
    assert "no multihome program found" not in out, out
    unit = (guest.root / "etc/systemd/system/multihome@.service").read_text()
    assert "ExecStart=/usr/bin/multihome apply" in unit
    guest.sh("systemctl", "enable", "multihome-agent.service")
    installed = time.monotonic() - started

    guest.poweroff()
    guest.boot()
    wait_for_policy(guest, expected)
    active = guest.sh("systemctl", "is-active", *UNITS, check=False).stdout.split()
    assert active == ["active"] * len(UNITS), active
    doctor = json.loads(guest.sh("multihome", "doctor", "--json", check=False).stdout)
    assert "unit-program-missing" not in {p["code"] for p in doctor["problems"]}
    rebooted = time.monotonic() - started

    guest.sh("apt-get", "remove", "-y", "-q", "multihome")
    assert enabled_units(guest) == []
    assert not (guest.root / "etc/systemd/system/multihome@.service").exists()
    assert not (guest.root / "var/lib/multihome/persist.json").exists()
    assert (guest.root / "etc/multihome/config.yaml").exists()  # a conffile: kept until purge
    agent = guest.sh("systemctl", "is-active", "multihome-agent.service", check=False)
    assert agent.stdout.strip() != "active"

    guest.sh("apt-get", "purge", "-y", "-q", "multihome")
    after = files(guest.root)
    assert sorted(after - before) == [], "left by the package"
    assert sorted(before - after) == [], "removed, but not the package's"
    print(
        f"\ndeb: installed + applied + persisted {installed:.1f}s, rebooted {rebooted:.1f}s, "
        f"removed + purged {time.monotonic() - started:.1f}s"
    )
