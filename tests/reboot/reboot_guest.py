"""Real reboots: a debootstrapped Debian 12 guest booted by systemd-nspawn, with two ports.

What made it work on this kind of machine (PID 1 is not systemd, cgroups v1 hybrid):

* the launcher moves itself into a dedicated cgroup in ``/sys/fs/cgroup/systemd`` and in
  ``/sys/fs/cgroup/unified`` (``--keep-unit`` then runs the container there);
* ``unshare -m --propagation private`` with a tmpfs on ``/run/systemd/nspawn``, so that two
  guests booting at once (pytest -n 2) never share nspawn's runtime files and no mount leaks;
* ``systemd-nspawn --boot --register=no --keep-unit --network-namespace-path=... --capability=
  CAP_NET_ADMIN --console=read-only``: the guest's NICs are veth ends in a fresh network
  namespace per boot, their peers on a bridge in the "cloud" namespace, where dnsmasq answers
  like Neutron's DHCP agent (fixed lease per MAC, option 121 with metadata route and default);
* ``SYSTEMD_NSPAWN_API_VFS_WRITABLE=network`` makes the guest's ``/proc/sys/net`` writable, as
  in a VM (else every per-interface sysctl write fails with EROFS);
* commands run inside with ``nsenter -t <guest PID 1> -a``; ``systemctl poweroff`` inside makes
  nspawn exit, and booting again means new namespaces, new veths (same MACs), a new cgroup.

The root file system is built once by ``debootstrap`` (about 80 s) and cached as a tarball in
``/var/cache/multihome-test/``, keyed by the package list; each test unpacks its own copy
(about 1 s). Everything a test starts (nspawn and the guest, dnsmasq, namespaces, cgroups) is
removed again, also when the test fails.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "persist"))

from persist_util import (
    LEASES,
    MACS,
    Namespaces,
    need,
    need_root,
    rule_tuple,
    run,
    start_dnsmasq,
    wait_gone,
)

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("MULTIHOME_TEST_CACHE", "/var/cache/multihome-test"))
MIRROR = os.environ.get("MULTIHOME_TEST_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
#: One root file system for every backend; each scenario enables the services it needs.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "libpam-systemd",
    "iproute2",
    "dbus",
    "udev",
    "netbase",
    "python3",
    "python3-yaml",
    "python3-click",
    "python3-pyroute2",
    "netplan.io",
    "network-manager",
)
#: Bump when the build steps below change (the cache key includes it).
RECIPE = 1
PORTS = ("eth0", "eth1")
GATEWAY = "192.168.0.1"
#: An address beyond the gateway (the lab's "internet" host; nothing is sent to it).
INTERNET = "198.51.100.10"
#: The band of rule priorities multihome owns (docs/design.md, section 6).
BAND = range(10000, 10100)
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# -- the cached root file system -----------------------------------------------------------------


def rootfs_key() -> str:
    text = json.dumps([SUITE, "minbase", sorted(PACKAGES), RECIPE])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def rootfs_tarball() -> Path:
    """The cached root file system, built first when missing (one builder at a time)."""
    key = rootfs_key()
    tarball = CACHE_DIR / f"rootfs-{SUITE}-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / f"rootfs-{SUITE}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest -n 2: the other worker waits and reuses it
        if tarball.exists():
            return tarball
        build = CACHE_DIR / f"build-{key}-{os.getpid()}"
        tmp = tarball.with_name(f".{tarball.name}.{os.getpid()}")
        try:
            safe_rmtree(build)
            # In a private mount namespace: debootstrap's /proc and /sys mounts in the target
            # vanish with it, even when it fails half-way.
            proc = run(
                "unshare",
                "-m",
                "--propagation",
                "private",
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(build),
                MIRROR,
                check=False,
                timeout=1200,
            )
            if proc.returncode != 0:
                raise AssertionError(
                    f"debootstrap {SUITE} from {MIRROR} failed ({proc.returncode}); "
                    f"set MULTIHOME_TEST_MIRROR to a reachable Debian mirror\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
                )
            for junk in ("usr/share/doc", "usr/share/man", "usr/share/info", "var/lib/apt/lists"):
                safe_rmtree(build / junk)
            (build / "var/lib/apt/lists/partial").mkdir(parents=True)
            run("tar", "-C", str(build), "--numeric-owner", "--xattrs", "-cf", str(tmp), ".")
            os.replace(tmp, tarball)
            for old in CACHE_DIR.glob(f"rootfs-{SUITE}-*.tar"):
                if old != tarball:  # an earlier package list: never used again
                    old.unlink(missing_ok=True)
        finally:
            safe_rmtree(build)
            tmp.unlink(missing_ok=True)
    return tarball


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix) or point == prefix[:-1]:
            found.append(point)
    return found


def safe_rmtree(path: Path) -> None:
    """Remove ``path``, but never through a mount point (a bind-mounted /dev, say)."""
    if not path.exists():
        return
    for point in sorted(mounts_under(path), key=len, reverse=True):
        run("umount", "-l", point, check=False)
    left = mounts_under(path)
    if left:
        raise AssertionError(f"not removing {path}: still mounted there: {left}")
    shutil.rmtree(path, ignore_errors=True)


# -- the guest -----------------------------------------------------------------------------------

LAUNCH = r"""
set -e
echo $$ > "$1/cgroup.procs"
echo $$ > "$2/cgroup.procs"
shift 2
exec unshare -m --propagation private sh -c '
set -e
mkdir -p /run/systemd/nspawn
mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn
SYSTEMD_NSPAWN_API_VFS_WRITABLE=network exec systemd-nspawn -D "$1" --machine="$2" --boot \
  --register=no --keep-unit --network-namespace-path="$3" --capability=CAP_NET_ADMIN \
  --console=read-only
' sh "$@"
"""

NETWORKD_PORT = """[Match]
Name={name}

[Network]
DHCP=ipv4

[DHCPv4]
RouteMetric={metric}
"""

NETPLAN_CLOUD_INIT = """# written by cloud-init (as on an Ubuntu cloud image)
network:
  version: 2
  ethernets:
{ports}"""

#: Matched by name: netplan 0.106 matches ``macaddress`` as networkd's PermanentMACAddress=,
#: which a veth does not have (a virtio NIC has).
NETPLAN_PORT = """    {name}:
      dhcp4: true
      dhcp4-overrides:
        route-metric: {metric}
"""

NM_PROFILE = """[connection]
id=cloud-init {name}
uuid=1dd9a779-d327-56e1-8454-c65e2556c12{index}
type=ethernet
interface-name={name}

[ethernet]
mac-address={mac}

[ipv4]
method=auto
route-metric={metric}

[ipv6]
method=ignore
"""

#: In a VM, udev's 99-systemd.rules runs ``systemd-sysctl --prefix=/net/ipv4/conf/<if>`` for
#: every NIC that appears. The container has no udev, and only ``/proc/sys/net`` is writable
#: (all of ``/proc/sys`` would let the guest change the host's kernel settings): at boot,
#: systemd-sysctl applies the per-interface settings, as udev would.
SYSCTL_DROPIN = """[Unit]
ConditionPathIsReadWrite=
ConditionPathIsReadWrite=/proc/sys/net/

[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-sysctl --prefix=/net/ipv4/conf
"""

#: What each network stack needs enabled (and what must not run next to it).
SERVICES = {
    "networkd": (["systemd-networkd.service"], ["NetworkManager.service"]),
    "networkmanager": (["NetworkManager.service"], ["systemd-networkd.service"]),
}
#: Timers and jobs of a stock image that only slow a test boot down.
NOISE = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
)


@dataclass
class BootTimes:
    """Seconds from starting nspawn: to the end of start-up, to the policy being in place."""

    boot: float
    policy: float | None = None
    poweroff: float | None = None


@dataclass
class Guest:
    """A Debian 12 guest with ports eth0 and eth1, booted and powered off on demand."""

    root: Path
    spaces: Namespaces
    switch: str
    logdir: Path
    ports: tuple[str, ...] = PORTS
    macs: Mapping[str, str] = field(default_factory=lambda: dict(MACS))
    """Each port's MAC (the lab's scenario has its own)."""
    peers: tuple[str, ...] | None = None
    """The switch's side of each port, the same at every boot (the lab's port security
    matches ``tap0``, ``tap1``, ...); None: a new name per boot."""
    bridge: str = "br0"
    bridges: Mapping[str, str] = field(default_factory=dict)
    """A port plugged into another bridge than :attr:`bridge` (a link of its own)."""
    boots: int = 0
    times: list[BootTimes] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    pid1: int | None = None
    netns: str | None = None
    cgroups: list[Path] = field(default_factory=list)
    started: float = 0.0

    # -- preparing the root file system (on the host, before the first boot) -------------------
    def unpack(self, tarball: Path) -> None:
        self.root.mkdir(parents=True)
        run("tar", "-C", str(self.root), "--numeric-owner", "--xattrs", "-xf", str(tarball))
        (self.root / "etc/hostname").write_text("mhguest\n")
        (self.root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
        for unit in NOISE:
            self.systemctl("mask", unit)
        self.write("/etc/systemd/system/systemd-sysctl.service.d/50-container.conf", SYSCTL_DROPIN)

    def systemctl(self, *args: str) -> None:
        """``systemctl --root``: enable, disable or mask units in the guest's file system."""
        run("systemctl", f"--root={self.root}", "--quiet", *args)

    def use_stack(self, stack: str) -> None:
        """Enable ``networkd`` or ``networkmanager`` and disable the other."""
        enable, disable = SERVICES[stack]
        for unit in disable:
            self.systemctl("disable", unit)
        for unit in enable:
            self.systemctl("enable", unit)

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def configure_networkd(self) -> None:
        """A ``.network`` per port with DHCP, as an image configured for networkd has."""
        self.use_stack("networkd")
        for i, name in enumerate(self.ports):
            self.write(
                f"/etc/systemd/network/10-{name}.network",
                NETWORKD_PORT.format(name=name, metric=100 + i),
            )

    def configure_netplan(self) -> None:
        """cloud-init's netplan file (networkd renderer), as on an Ubuntu cloud image."""
        self.use_stack("networkd")
        body = "".join(
            NETPLAN_PORT.format(name=name, metric=100 + i) for i, name in enumerate(self.ports)
        )
        self.write("/etc/netplan/50-cloud-init.yaml", NETPLAN_CLOUD_INIT.format(ports=body), 0o600)

    def configure_networkmanager(self) -> None:
        """cloud-init's NetworkManager profiles, as on a RHEL 9 / Fedora cloud image."""
        self.use_stack("networkmanager")
        for i, name in enumerate(self.ports):
            self.write(
                f"/etc/NetworkManager/system-connections/cloud-init-{name}.nmconnection",
                NM_PROFILE.format(name=name, index=i, mac=self.macs[name].upper(), metric=100 + i),
                0o600,
            )

    def install_multihome(self) -> None:
        """The multihome under test, run by the guest's own python3 and Debian's libraries."""
        dest = self.root / "opt/multihome/src/multihome"
        shutil.copytree(
            REPO / "src/multihome", dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        self.write(
            "/usr/local/bin/multihome",
            "#!/bin/sh\n# the multihome of the repository under test\n"
            'PYTHONPATH=/opt/multihome/src exec /usr/bin/python3 -m multihome "$@"\n',
            0o755,
        )

    # -- booting -----------------------------------------------------------------------------
    def _peer(self, boot: int, index: int) -> str:
        """The switch's end of port ``index``'s veth at boot number ``boot``."""
        return f"b{boot}p{index}" if self.peers is None else self.peers[index]

    def boot(self, timeout: float = 90) -> BootTimes:
        """Boot with fresh namespaces and veths; return when start-up has finished."""
        assert self.proc is None, "already running"
        self.boots += 1
        self.netns = self.spaces.add(f"vm{self.boots}")
        for i, port in enumerate(self.ports):
            peer = self._peer(self.boots, i)
            if self.boots > 1 or self.peers is not None:
                # The last boot's veth goes with its namespace, but only once the kernel has
                # cleaned that namespace up (after the last guest process has exited, later
                # under load). Until then the old port, with the same MAC, is still on the
                # bridge and answers the new port's DAD with its own link-local and SLAAC
                # addresses: both fail DAD, networkd never calls the port configured and
                # systemd-networkd-wait-online times out the boot.
                wait_gone(self.switch, self._peer(self.boots - 1, i), timeout=30)
            run(
                "ip",
                "link",
                "add",
                port,
                "netns",
                self.netns,
                "address",
                self.macs[port],
                "type",
                "veth",
                "peer",
                peer,
                "netns",
                self.switch,
            )
            bridge = self.bridges.get(port, self.bridge)
            run("ip", "-n", self.switch, "link", "set", peer, "master", bridge)
            run("ip", "-n", self.switch, "link", "set", peer, "up")
        name = f"{self.spaces.prefix}-b{self.boots}"
        self.cgroups = [Path("/sys/fs/cgroup", h, name) for h in ("systemd", "unified")]
        for cgroup in self.cgroups:
            cgroup.mkdir()
        start = self.started = time.monotonic()
        self.proc = self.spaces.spawn(
            [
                "sh",
                "-c",
                LAUNCH,
                "launch",
                *map(str, self.cgroups),
                str(self.root),
                self.spaces.prefix,
                f"/run/netns/{self.netns}",
            ],
            self.console,
        )
        self.pid1 = self._wait_for_pid1(timeout)
        deadline = start + timeout
        while True:
            try:
                proc = self.sh(
                    "systemctl", "is-system-running", "--wait", check=False, timeout=timeout
                )
            except subprocess.TimeoutExpired:
                jobs = self.sh("systemctl", "list-jobs", "--no-pager", check=False, timeout=10)
                raise AssertionError(
                    f"boot {self.boots} not finished after {timeout:g} s; jobs still "
                    f"running:\n{jobs.stdout.strip()}\n{self.tail()}"
                ) from None
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(
                    f"boot {self.boots} did not finish: {state!r} {proc.stderr.strip()}\n"
                    f"{self.tail()}"
                )
            time.sleep(0.1)  # systemd's bus not up yet
        times = BootTimes(time.monotonic() - start)
        self.times.append(times)
        if state == "degraded":
            failed = self.sh("systemctl", "--failed", "--no-legend", "--plain", check=False)
            units = [line.split()[0] for line in failed.stdout.splitlines() if line.strip()]
            journal = self.sh(
                "journalctl",
                "-b",
                "--no-pager",
                "-o",
                "cat",
                *(f"--unit={u}" for u in units),
                check=False,
            )
            raise AssertionError(
                f"boot {self.boots}: units failed: {units}\n{journal.stdout[-4000:]}\n"
                f"{self.network_state()}"
            )
        return times

    def network_state(self) -> str:
        """What the guest's network managers say (for a failed boot's message): networkd's
        links and the end of its journal, the addresses and routes of both families."""
        parts = [
            ("networkctl", ("networkctl", "list", "--no-pager")),
            ("networkd", ("journalctl", "-b", "--no-pager", "-o", "short-monotonic",
                          "--unit=systemd-networkd", "--unit=NetworkManager")),
            ("addresses", ("ip", "addr")),
            ("routes", ("ip", "-6", "route", "show", "table", "all")),
        ]  # fmt: skip
        text = []
        for title, command in parts:
            got = self.sh(*command, check=False, timeout=10)
            text.append(f"-- {title}:\n{(got.stdout + got.stderr)[-3000:].strip()}")
        return "\n".join(text)

    @property
    def console(self) -> Path:
        return self.logdir / f"console-boot{self.boots}.log"

    def tail(self, lines: int = 40) -> str:
        text = self.console.read_text(errors="replace") if self.console.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_for_pid1(self, timeout: float) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        own_pidns = os.readlink("/proc/self/ns/pid")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"systemd-nspawn exited ({self.proc.returncode}):\n{self.tail()}"
                )
            for child in _children(self.proc.pid):
                with contextlib.suppress(OSError):
                    comm = Path(f"/proc/{child}/comm").read_text().strip()
                    if comm == "systemd" and os.readlink(f"/proc/{child}/ns/pid") != own_pidns:
                        return child
            time.sleep(0.02)
        raise AssertionError(f"no guest PID 1 after {timeout}s:\n{self.tail()}")

    def sh(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the guest (all its namespaces, a clean environment)."""
        assert self.pid1 is not None, "not running"
        return run(
            "nsenter",
            "-t",
            str(self.pid1),
            "-a",
            "env",
            "-i",
            f"PATH={GUEST_PATH}",
            "LANG=C.UTF-8",
            *args,
            check=check,
            timeout=timeout,
        )

    def ip(self, *args: str) -> list[dict[str, Any]]:
        """The host's own ``ip -j`` in the guest's network namespace (independent of the guest)."""
        assert self.pid1 is not None
        proc = run("nsenter", "-t", str(self.pid1), "-n", "ip", "-N", "-j", *args, check=False)
        if proc.returncode != 0:
            return []
        data: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
        return data

    def poweroff(self, timeout: float = 60) -> float:
        """``systemctl poweroff`` inside; nspawn exits; the namespaces and cgroups go."""
        assert self.proc is not None and self.pid1 is not None
        start = time.monotonic()
        self.sh("systemctl", "poweroff", check=False)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"the guest did not power off in {timeout}s:\n{self.tail()}"
            ) from exc
        elapsed = time.monotonic() - start
        if self.times:
            self.times[-1].poweroff = elapsed
        with contextlib.suppress(ValueError):
            self.spaces.pids.remove(self.proc.pid)  # reaped: never signal that number again
        self.proc = self.pid1 = None
        self._drop_boot_resources()
        return elapsed

    def _drop_boot_resources(self) -> None:
        if self.netns is not None:
            run("ip", "netns", "del", self.netns, check=False)
            self.netns = None
        for cgroup in self.cgroups:
            remove_cgroup(cgroup)
        self.cgroups = []

    def destroy(self) -> None:
        """Stop everything of this guest at once (teardown, also after a failure)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        if self.proc is not None:
            with contextlib.suppress(ValueError):
                self.spaces.pids.remove(self.proc.pid)
        self.proc = self.pid1 = None
        for cgroup in self.cgroups:  # the guest's processes outlive a killed nspawn
            kill_cgroup(cgroup)
        if self.netns is not None:
            for pid in run("ip", "netns", "pids", self.netns, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        self._drop_boot_resources()

    # -- what the kernel of the guest says -----------------------------------------------------
    def band_rules(self) -> list[tuple[object, ...]]:
        """multihome's rules (priority band), sorted, duplicates kept."""
        return sorted(rule_tuple(r) for r in self.ip("rule") if int(r["priority"]) in BAND)

    def routes(self, table: int | str) -> list[dict[str, Any]]:
        return self.ip("route", "show", "table", str(table))

    def defaults(self, table: int | str) -> list[tuple[object, object]]:
        return sorted(
            (r.get("gateway"), r.get("dev")) for r in self.routes(table) if r["dst"] == "default"
        )

    def sysctl(self, name: str) -> str:
        """A sysctl as the guest sees it (``/proc/sys/net`` answers for the reader's netns)."""
        assert self.pid1 is not None
        path = f"/proc/sys/{name.replace('.', '/')}"
        return run("nsenter", "-t", str(self.pid1), "-n", "cat", path).stdout.strip()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def kill_cgroup(cgroup: Path) -> None:
    """Kill every process in a cgroup (v2 ``cgroup.kill``; v1: signal each one)."""
    kill = cgroup / "cgroup.kill"
    if kill.exists():
        with contextlib.suppress(OSError):
            kill.write_text("1")
        return
    for procs in cgroup.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)


def remove_cgroup(cgroup: Path, timeout: float = 10) -> None:
    """Remove a cgroup and the ones nspawn and the guest made below it (deepest first)."""
    if not cgroup.exists():
        return
    deadline = time.monotonic() + timeout
    while True:
        busy = False
        for directory in sorted(
            (p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            busy |= not _rmdir(directory)
        busy |= not _rmdir(cgroup)
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"cannot remove cgroup {cgroup}: processes are still in it")
        kill_cgroup(cgroup)
        time.sleep(0.1)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise
    return True


# -- the cloud side ------------------------------------------------------------------------------


def make_switch(spaces: Namespaces, workdir: Path, ports: tuple[str, ...] = PORTS) -> str:
    """The tenant network: a bridge with the router and DHCP/metadata addresses, and dnsmasq
    serving the guest's ports by MAC. It lives across the guest's reboots, as a cloud does."""
    switch = spaces.add("sw")
    run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
    run("ip", "-n", switch, "link", "set", "br0", "up")
    for addr in (f"{GATEWAY}/24", "192.168.0.100/24"):
        run("ip", "-n", switch, "addr", "add", addr, "dev", "br0")
    workdir.mkdir(parents=True, exist_ok=True)
    start_dnsmasq(switch, list(ports), workdir)
    return switch


@contextlib.contextmanager
def guest_environment(tmp_path: Path, tarball: Path, *, baked: bool = True) -> Iterator[Guest]:
    """A prepared guest (not booted yet) and its cloud; all of it is gone afterwards. With
    ``baked`` (the default) the image has the multihome under test (:meth:`install_multihome`);
    without, the guest installs it itself (at first boot, say)."""
    need_root()
    need("systemd-nspawn", "nsenter", "unshare", "dnsmasq")
    spaces = Namespaces(f"mhreboot-{secrets.token_hex(3)}")
    root = tmp_path / "root"
    guest: Guest | None = None
    try:
        switch = make_switch(spaces, tmp_path / "cloud")
        guest = Guest(root=root, spaces=spaces, switch=switch, logdir=tmp_path)
        guest.unpack(tarball)
        if baked:
            guest.install_multihome()
        yield guest
    finally:
        try:
            if guest is not None:
                guest.destroy()
        finally:
            spaces.cleanup()
            safe_rmtree(root)


# -- expectations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """The policy computed in the guest before persisting it (``multihome plan --json``)."""

    rules: list[tuple[object, ...]]
    tables: dict[str, int]
    sysctls: dict[str, str]


def expected_from_plan(plan: dict[str, Any]) -> Expected:
    """Rule tuples (as :func:`rule_tuple` makes them from ``ip -j rule``) and table ids."""
    rules = []
    for change in plan["changes"]:
        if change["kind"] != "rule":
            continue
        table = change["table"]
        rules.append(
            (
                change["priority"],
                "all" if change["src"] is None else _host(change["src"]),
                None if change["dst"] is None else _host(change["dst"]),
                change["iif"],
                change["oif"],
                "main" if table == 254 else str(table),
                change["suppress_prefixlength"],
            )
        )
    tables = {i["name"]: i["table"]["id"] for i in plan["interfaces"] if i["table"]}
    sysctls = {c["name"]: c["value"] for c in plan["changes"] if c["kind"] == "sysctl"}
    return Expected(sorted(rules), tables, sysctls)


def _host(net: str) -> str:
    return net.removesuffix("/32")


def policy_problems(guest: Guest, expected: Expected) -> list[str]:
    """Everything that differs from the policy, read with the host's ``ip -j`` (empty: right)."""
    problems = []
    rules = guest.band_rules()
    doubled = [r for r, n in Counter(rules).items() if n > 1]
    if doubled:
        problems.append(f"duplicate rules: {doubled}")
    if rules != expected.rules:
        missing = sorted(set(expected.rules) - set(rules))
        extra = sorted(set(rules) - set(expected.rules))
        problems.append(f"rules differ from the policy: missing {missing}, unexpected {extra}")
    suppress = (10001, "all", None, None, None, "main", 0)
    if rules.count(suppress) != 1:
        problems.append(f"want one 'lookup main suppress_prefixlength 0' rule: {rules}")
    for port, table in sorted(expected.tables.items()):
        t = str(table)
        for want in (
            (10000, LEASES[port], None, None, None, t, None),
            (10003, "all", None, None, port, t, None),
            (10004, "all", None, port, None, t, None),
        ):
            if rules.count(want) != 1:
                problems.append(f"{port}: want exactly one rule {want}")
        if guest.defaults(table) != [(GATEWAY, port)]:
            problems.append(f"{port}: table {table} defaults {guest.defaults(table)}")
        # What the kernel does with it: a reply from the port's address to the internet
        # leaves through the port and its gateway (the how-to's bug: eth1's left via eth0).
        for selector in (("from", LEASES[port]), ("oif", port)):
            got = guest.ip("route", "get", INTERNET, *selector)
            hop = [(r.get("dev"), r.get("gateway")) for r in got]
            if hop != [(port, GATEWAY)]:
                problems.append(f"{port}: route get {INTERNET} {' '.join(selector)}: {hop}")
    if guest.defaults("main") != [(GATEWAY, "eth0")]:
        problems.append(f"main's defaults: {guest.defaults('main')} (want eth0's only)")
    routes = guest.ip("route", "show", "table", "all")
    keys = Counter(
        (r.get("table", "main"), r["dst"], r.get("dev"), r.get("gateway"), r.get("type"))
        for r in routes
    )
    doubled_routes = [k for k, n in keys.items() if n > 1]
    if doubled_routes:
        problems.append(f"duplicate routes: {doubled_routes}")
    sysctls = {name: guest.sysctl(name) for name in expected.sysctls}
    if sysctls != expected.sysctls:
        problems.append(f"sysctls {sysctls}, want {expected.sysctls}")
    return problems


def wait_for_policy(guest: Guest, expected: Expected, timeout: float = 60) -> float:
    """Poll until the policy is in place; seconds since this boot started nspawn."""
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    while time.monotonic() < deadline:
        problems = policy_problems(guest, expected)
        if not problems:
            elapsed = time.monotonic() - guest.started
            if guest.times:
                guest.times[-1].policy = elapsed
            return elapsed
        time.sleep(0.1)
    raise AssertionError(
        f"boot {guest.boots}: the policy is not back after {timeout}s:\n"
        + "\n".join(problems)
        + f"\n{guest.tail()}"
    )


def wait_until(check: Callable[[], bool], timeout: float, what: str, guest: Guest) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"boot {guest.boots}: timed out after {timeout}s waiting for {what}")
