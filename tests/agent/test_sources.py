"""Metadata readers (directory, HTTP with bounded retries, a real config-2 filesystem on a
loop device), port intents by MAC, and, in namespaces: the
config drive and the metadata service give the same plan."""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from agent_util import ADDRESS, MAC, Lab, network_data, sh, write_drive

from multihome.errors import InputError, MetadataUnavailable
from multihome.model import PROTO_STATIC, TABLE_MAIN, Address, HostState, Link, Route
from multihome.source import (
    Retry,
    augment,
    find_config_drive,
    intents,
    parse_network_data,
    pending_static,
    read_config_drive,
    read_service,
)


class _Handler(http.server.SimpleHTTPRequestHandler):
    failures: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        if self.failures:
            self.send_error(self.failures.pop(0))
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_service(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    """A local HTTP server for the drive tree; the list holds error codes to answer first."""
    write_drive(tmp_path / "md", network_data(static=("eth2",)))
    failures: ClassVar[list[int]] = []
    handler = type("H", (_Handler,), {"failures": failures})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(tmp_path / "md"))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", failures
    finally:
        server.shutdown()
        server.server_close()


def test_directory_and_service_read_the_same(
    tmp_path: Path, http_service: tuple[str, list[int]]
) -> None:
    """A config-drive tree and the metadata service serving it parse to equal objects."""
    url, _ = http_service
    drive = read_config_drive(tmp_path / "md")
    service = read_service(url, Retry(1, 2, 0))
    assert drive.network == service.network and drive.meta == service.meta
    assert drive.meta.uuid == "0000-test"
    assert drive.origin.startswith("config drive") and service.origin.startswith("metadata")


def test_service_retries_are_bounded(http_service: tuple[str, list[int]]) -> None:
    """Two 500s then success: read with 3 attempts; 404 is not retried; an unreachable
    service gives up after its attempts, quickly, with MetadataUnavailable."""
    url, failures = http_service
    failures[:] = [500, 503]
    sleeps: list[float] = []
    assert read_service(url, Retry(3, 2, 0.1), sleep=sleeps.append).network.links
    assert sleeps == [0.1, 0.2]
    failures[:] = [404]
    sleeps.clear()
    with pytest.raises(MetadataUnavailable, match="HTTP 404"):
        read_service(url, Retry(5, 2, 0.1), sleep=sleeps.append)
    assert sleeps == []
    start = time.monotonic()
    with pytest.raises(MetadataUnavailable, match="3 attempt"):
        read_service("http://127.0.0.1:9", Retry(3, 0.5, 0.01))
    assert time.monotonic() - start < 5


def test_missing_drive_is_unavailable_not_an_error(tmp_path: Path) -> None:
    """An empty directory or a missing path means "no metadata", never a deletion."""
    with pytest.raises(MetadataUnavailable):
        read_config_drive(tmp_path)
    with pytest.raises(MetadataUnavailable):
        read_config_drive(tmp_path / "nope")


def _state() -> HostState:
    links = [
        Link("eth0", 2, MAC["eth0"], up=True),
        Link("eth1", 3, MAC["eth1"], up=True),
        Link("eth2", 4, MAC["eth2"], up=False),
        Link("eth9", 5, "fa:16:3e:99:99:99"),
        Link("lo", 1, None, loopback=True),
    ]
    addresses = [
        Address("eth0", ipaddress.ip_interface("192.168.0.107/24")),
        Address("eth1", ipaddress.ip_interface("192.168.0.112/24")),
    ]
    return HostState.build(links, addresses)


def test_intents_match_by_mac_and_only_add() -> None:
    """Links are matched by MAC; the static port's address and routes are added to the
    policy's input (metric 1000+ifindex, proto static); nothing is removed."""
    data = parse_network_data(json.dumps(network_data(static=("eth2",))).encode(), "t")
    state = _state()
    modes = {i.ifname: i.mode for i in intents(state, data)}
    assert modes == {"eth0": "dhcp", "eth1": "dhcp", "eth2": "static", "eth9": "unknown"}
    (config,) = pending_static(state, data)
    assert [str(a.interface) for a in config.addresses] == ["192.168.0.120/24"]
    default = [r for r in config.routes if r.is_default]
    assert default == [
        Route(
            TABLE_MAIN,
            ipaddress.ip_network("0.0.0.0/0"),
            "eth2",
            ipaddress.ip_address("192.168.0.1"),
            1004,
            PROTO_STATIC,
            prefsrc=ipaddress.ip_address("192.168.0.120"),
        )
    ]
    view = augment(state, [config])
    assert set(state.addresses) < set(view.addresses) and set(state.routes) <= set(view.routes)
    eth2 = view.link("eth2")
    assert eth2 is not None and eth2.up
    # A port that has an address already is left exactly as it is.
    addressed = HostState.build(
        state.links, [*state.addresses, Address("eth2", ipaddress.ip_interface("10.9.9.9/24"))]
    )
    assert pending_static(addressed, data) == ()


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        (ADDRESS["eth1"], "is eth1's address"),
        ("192.168.0.0", "network address of 192.168.0.0/24"),
        ("192.168.0.255", "broadcast address of 192.168.0.0/24"),
    ],
)
def test_static_metadata_with_a_taken_or_special_address_adds_nothing(ip: str, why: str) -> None:
    """A DHCP-disabled port whose metadata gives it another port's address, or its subnet's
    network or broadcast address: the configuration is refused (saying why), adds nothing to
    the policy's input, and its description (`plan --source openstack` prints it) says so."""
    doc = network_data(static=("eth2",))
    for network in doc["networks"]:
        if network["link"] == "tapeth2":
            network["ip_address"] = ip
    data = parse_network_data(json.dumps(doc).encode(), "t")
    state = _state()
    (config,) = pending_static(state, data)
    assert config.refused is not None and why in config.refused
    assert config.addresses == () and config.routes == ()
    assert "metadata refused" in config.describe()
    assert augment(state, [config]) == state


# -- namespaces ----------------------------------------------------------------------------
def _plan(lab: Lab, *argv: str) -> dict[str, object]:
    result = lab.multihome("plan", "--json", "--source", "openstack", *argv)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data.pop("source") == "openstack"
    data.pop("origin")
    return dict(data)


def test_config_drive_and_service_give_the_same_plan(lab: Lab) -> None:
    """With a DHCP-disabled eth2 (up, no address): a config-drive directory, the metadata
    service at 169.254.169.254 and a real filesystem labelled config-2 give the same plan,
    which includes eth2's table and rules from its metadata address."""
    drive = write_drive(lab.tmp / "md", network_data(static=("eth2",)))
    lab.add_port("eth2", None)
    lab.serve_metadata(drive)
    from_dir = _plan(lab, "--metadata", str(drive))
    from_service = _plan(lab, "--metadata", "http://169.254.169.254")
    assert from_dir == from_service
    assert any(
        c.get("kind") == "rule" and c.get("src") == f"{ADDRESS['eth2']}/32"
        for c in from_dir["changes"]
    )  # type: ignore[union-attr]
    assert from_dir["static"][0]["interface"] == "eth2"  # type: ignore[index]
    text = lab.multihome("plan", "--source", "openstack", "--metadata", str(drive)).stdout
    assert "# source: openstack (config drive" in text and "192.168.0.120/24" in text
    kernel = lab.multihome("plan", "--json", "--source", "kernel")
    assert json.loads(kernel.stdout)["source"] == "kernel"
    assert lab.addresses("eth2") == []  # plan changed nothing
    image = _config_drive_image(lab.tmp, drive)
    if image is None:
        pytest.skip("no loop device / mkfs.ext4 here")
    try:
        assert _plan(lab, "--metadata", image) == from_dir
        # Discovered by its label; detached right away (anyone's `plan --source auto` on this
        # machine would see it too), so discovery is checked without a plan.
        assert Path(image) in find_config_drive()
    finally:
        sh("losetup", "-d", image, check=False)


def _config_drive_image(tmp: Path, drive: Path) -> str | None:
    """A filesystem labelled config-2 holding ``drive``, on a loop device. (This kernel has
    no vfat/iso9660, which real config drives use; ext4 carries the label the same way.)"""
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not shutil.which("losetup"):
        return None
    image = tmp / "config-drive.img"
    with image.open("wb") as handle:
        handle.truncate(8 << 20)
    made = subprocess.run(
        ["mkfs.ext4", "-q", "-L", "config-2", "-d", str(drive), str(image)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        return None
    loop = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=False
    )
    return loop.stdout.strip() if loop.returncode == 0 else None


class _Endless(http.server.BaseHTTPRequestHandler):
    """An answer without end: ``drip`` seconds between chunks of ``chunk`` bytes (no
    Content-Length, as a broken or hostile service may send)."""

    chunk: ClassVar[int] = 65536
    drip: ClassVar[float] = 0.0
    url: ClassVar[str] = ""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            self.wfile.write(b'{"links": [' + b" " * 10)
            while True:
                self.wfile.write(b" " * self.chunk)
                self.wfile.flush()
                if self.drip:
                    time.sleep(self.drip)
        except OSError:
            return  # the reader hung up: what the test wants

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endless() -> Iterator[type[_Endless]]:
    """A local service whose every answer never ends (tune ``chunk`` and ``drip``)."""
    handler = type("E", (_Endless,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_huge_or_endless_answer_is_refused_at_the_limit(endless: type[_Endless]) -> None:
    """An endless network_data.json from the metadata service: an InputError naming the URL
    and the limit, after reading just past the limit (not the whole answer)."""
    start = time.monotonic()
    with pytest.raises(InputError, match=r"network_data\.json.*reading stopped after 1048576"):
        read_service(endless.url, Retry(1, 2, 0))
    assert time.monotonic() - start < 10


def test_a_dripping_answer_is_cut_off_by_the_total_time(endless: type[_Endless]) -> None:
    """A service that sends a few bytes every 0.1 s (each read within its timeout) is cut off
    after the answer's total time, with MetadataUnavailable (wait, never delete)."""
    endless.chunk, endless.drip = 16, 0.1
    start = time.monotonic()
    with pytest.raises(MetadataUnavailable, match="took longer than 1 s"):
        read_service(endless.url, Retry(1, 2, 0, total=1))
    assert time.monotonic() - start < 5


def test_a_huge_file_or_a_fifo_on_the_drive_is_refused(tmp_path: Path) -> None:
    """A 64 MB network_data.json (sparse) on a config drive is refused naming the file and the
    limit; a FIFO in its place is refused at once, never waited for."""
    drive = write_drive(tmp_path / "md", network_data())
    target = drive / "openstack/latest/network_data.json"
    with target.open("r+b") as handle:
        handle.truncate(64 << 20)
    with pytest.raises(InputError, match=r"network_data\.json.*reading stopped after 1048576"):
        read_config_drive(drive)
    target.unlink()
    os.mkfifo(target)
    start = time.monotonic()
    with pytest.raises(InputError, match="not a regular file"):
        read_config_drive(drive)
    assert time.monotonic() - start < 5
