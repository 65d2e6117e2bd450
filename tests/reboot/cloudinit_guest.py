"""First boot under real cloud-init: the reboot tests' Debian guest with Debian's ``cloud-init``
package and an OpenStack config drive, as a server of a topology gets it from Nova.

* The root file system is the reboot tests' cached guest (:func:`reboot_guest.rootfs_tarball`,
  never rebuilt here) plus ``cloud-init``, ``python3-venv`` and ``python3-pip`` installed with
  apt in a chroot; cached as its own tarball in ``/var/cache/multihome-test/cloudinit/``, built
  under a lock and renamed into place when complete.
* The guest has no internet: pip installs from a wheel directory baked into the image (the
  ``guest.wheels`` key of the topology). The wheels of multihome's runtime dependencies are
  built once into the same cache folder; multihome's own wheel is built from the checkout under
  test for every run.
* The config drive is the seed directory the ConfigDrive datasource reads in a machine without
  block devices: ``/var/lib/cloud/seed/config_drive/openstack/latest/`` with ``meta_data.json``,
  ``network_data.json`` (Nova's format: a link per port with its MAC, a network per subnet) and
  ``user_data`` (``multihome cloud user-data`` of the topology, run on the host).
* ``datasource_list: [ConfigDrive, None]``: ds-identify, run by cloud-init's systemd
  generator at every boot, finds the seed directory and enables cloud-init.
* cloud-init renders the network with its ``networkd`` renderer, matching each port by MAC:
  Debian's default choice here, netplan 0.106, matches a MAC as networkd's
  ``PermanentMACAddress=``, which the guest's veths do not have (a virtio NIC has one).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

from persist_util import LEASES, MACS, run
from reboot_guest import CACHE_DIR, REPO, Guest, rootfs_tarball, safe_rmtree

from multihome.cloud.topology import Server, Topology

#: What the image needs beyond the reboot tests' guest: cloud-init, and what multihome's
#: user-data installs with ``packages:`` (present, so that the air-gapped guest needs no mirror).
PACKAGES = ("cloud-init", "python3-venv", "python3-pip")
#: Bump when the build steps below change (the cache key includes it).
RECIPE = 1
FOLDER = CACHE_DIR / "cloudinit"
#: Where the image carries the wheels (``guest.wheels`` in the topology).
GUEST_WHEELS = "/var/lib/multihome-wheels"
SEED = "/var/lib/cloud/seed/config_drive/openstack/latest"
EXAMPLE = REPO / "examples" / "scenario4-two-ports-two-floating-ips.yaml"

#: The image's cloud-init settings: the OpenStack config drive only; networkd (see above);
#: the locale the image has (cloud-init's default, en_US.UTF-8, is not generated in it).
CLOUD_CFG = """# multihome test image: an OpenStack config drive, rendered for systemd-networkd
datasource_list: [ ConfigDrive, None ]
locale: C.UTF-8
system_info:
  network:
    renderers: [networkd]
"""

INSTALL = r"""
set -e
root=$1; shift
mount -t proc proc "$root/proc"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
chroot "$root" apt-get -q -o Acquire::Retries=3 update
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends \
  install "$@"
chroot "$root" apt-get clean
rm -f "$root/usr/sbin/policy-rc.d"
umount "$root/proc"
"""


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def _build_once(target: Path, build: Any) -> Path:
    """``target`` when it exists; else ``build(tmp)`` under the folder's lock, then renamed
    into place (a second builder waits and reuses it; nobody sees half of it)."""
    if target.exists():
        return target
    FOLDER.mkdir(parents=True, exist_ok=True)
    with (FOLDER / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        try:
            build(tmp)
            os.replace(tmp, target)
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        for old in FOLDER.glob(f"{target.name.rsplit('-', 1)[0]}-*"):
            if old != target:  # an earlier recipe or package list: never used again
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)
    return target


def rootfs_tarball_cloudinit() -> Path:
    """The reboot tests' root file system plus :data:`PACKAGES` (built first when missing,
    ~40 s, from the Debian mirror the shared guest was built from)."""
    base = rootfs_tarball()
    target = FOLDER / f"rootfs-{_key(base.name, sorted(PACKAGES), RECIPE)}.tar"

    def build(tmp: Path) -> None:
        root = FOLDER / f"build-{os.getpid()}"
        safe_rmtree(root)
        root.mkdir(parents=True)
        try:
            run("tar", "-C", str(root), "--numeric-owner", "--xattrs", "-xf", str(base))
            resolv = root / "etc/resolv.conf"
            saved = resolv.read_bytes()
            resolv.unlink()
            shutil.copyfile("/etc/resolv.conf", resolv)
            # a private mount namespace: the chroot's /proc vanishes with it, even on failure
            proc = run(
                "unshare", "-m", "--propagation", "private", "sh", "-c", INSTALL, "install",
                str(root), *PACKAGES, check=False, timeout=900,
            )  # fmt: skip
            if proc.returncode != 0:
                raise AssertionError(
                    f"installing {' '.join(PACKAGES)} into the guest failed "
                    f"({proc.returncode}); set MULTIHOME_TEST_MIRROR before the shared guest "
                    f"is built if the mirror is unreachable\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}"
                )
            resolv.write_bytes(saved)
            for junk in ("usr/share/doc", "usr/share/man", "usr/share/info"):
                safe_rmtree(root / junk)
            for lists in (root / "var/lib/apt/lists").glob("*"):
                if lists.is_file():
                    lists.unlink()
            run("tar", "-C", str(root), "--numeric-owner", "--xattrs", "-cf", str(tmp), ".")
        finally:
            safe_rmtree(root)

    return _build_once(target, build)


def runtime_requirements() -> list[str]:
    """multihome's runtime dependencies, as pyproject.toml names them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return sorted(project["dependencies"])


def dependency_wheels() -> Path:
    """A directory of wheels of multihome's runtime dependencies for the guest's Python 3.11
    (built once; the host's Python must be 3.11 too, as on Debian 12)."""
    requirements = runtime_requirements()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    target = FOLDER / f"wheels-{_key(requirements, tag)}"

    def build(tmp: Path) -> None:
        run(
            sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(tmp),
            *requirements, timeout=600,
        )  # fmt: skip

    return _build_once(target, build)


def multihome_wheel(dest: Path) -> Path:
    """The wheel of the checkout under test, built into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest),
        str(REPO), timeout=600,
    )  # fmt: skip
    (wheel,) = dest.glob("multihome-*.whl")
    return wheel


# -- the config drive ------------------------------------------------------------------------------


def meta_data(server: Server, instance: str) -> dict[str, Any]:
    """``meta_data.json`` as Nova writes it (the fields cloud-init reads)."""
    return {
        "uuid": instance,
        "name": server.name,
        "hostname": server.name,
        "launch_index": 0,
        "availability_zone": "nova",
        "project_id": "fake_project_id",
        "public_keys": {},
        "keys": [],
        "devices": [],
        "meta": {},
    }


def network_data(topology: Topology, server: Server, macs: list[str]) -> dict[str, Any]:
    """``network_data.json`` as Nova writes it for ``server``'s ports in order (a link per port
    with its MAC; a subnet with DHCP is ``ipv4_dhcp``, one without gets the fixed IP)."""
    links, networks = [], []
    for n, (port, mac) in enumerate(zip(server.ports, macs, strict=True)):
        port_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{topology.name}/{port.name}"))
        link = f"tap{port_id[:11]}"
        links.append(
            {"id": link, "vif_id": port_id, "type": "ovs", "mtu": 1500, "ethernet_mac_address": mac}
        )
        subnet = topology.subnet(port.subnet) if port.subnet else None
        assert subnet is not None, f"port {port.name}: the test needs a declared subnet"
        network_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{topology.name}/{port.network}"))
        net: dict[str, Any] = {"id": f"network{n}", "link": link, "network_id": network_id}
        if subnet.dhcp:
            net["type"] = f"ipv{subnet.ip_version}_dhcp"
        else:
            assert port.fixed_ip is not None
            net.update(
                type=f"ipv{subnet.ip_version}",
                ip_address=str(port.fixed_ip),
                netmask=str(subnet.cidr.netmask),
                routes=[],
            )
        networks.append(net)
    return {"links": links, "networks": networks, "services": []}


def lab_macs(topology: Topology, server: Server, ports: tuple[str, ...]) -> list[str]:
    """The MACs of ``server``'s ports: the lab's (its dnsmasq serves them), after checking that
    the topology's fixed IPs are the leases the lab's DHCP gives those MACs."""
    assert len(server.ports) == len(ports), (server.ports, ports)
    for port, name in zip(server.ports, ports, strict=True):
        assert str(port.fixed_ip) == LEASES[name], (port.name, port.fixed_ip, LEASES[name])
    return [MACS[name] for name in ports]


def prepare(guest: Guest, topology: Topology, user_data: str, wheels: list[Path]) -> str:
    """Write the image's cloud-init settings, the wheels and the config drive of the topology's
    first server into the (powered-off) guest; return the instance id."""
    server = topology.servers[0]
    instance = str(uuid.uuid4())
    guest.use_stack("networkd")  # a Debian cloud image runs systemd-networkd
    guest.write("/etc/cloud/cloud.cfg.d/99-multihome-test.cfg", CLOUD_CFG)
    # An air-gapped image has no package sources it could reach: ``packages:``'s apt-get
    # update has nothing to fetch (with the Debian mirror it waits ~90 s for DNS timeouts and
    # retries, then warns) and the install finds python3-venv and python3-pip present.
    (guest.root / "etc/apt/sources.list").write_text("# air-gapped: no package sources\n")
    for wheel in wheels:
        dest = guest.root / GUEST_WHEELS.lstrip("/") / wheel.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, dest)
    macs = lab_macs(topology, server, guest.ports)
    guest.write(f"{SEED}/meta_data.json", json.dumps(meta_data(server, instance), indent=1))
    guest.write(
        f"{SEED}/network_data.json", json.dumps(network_data(topology, server, macs), indent=1)
    )
    guest.write(f"{SEED}/user_data", user_data)
    return instance
