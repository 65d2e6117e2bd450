"""Hostile input files through the real command: ``multihome --config FILE plan``,
``multihome cloud plan -f FILE`` and ``multihome lab up --scenario FILE`` refuse an alias bomb,
a duplicate key, bytes that are not UTF-8, nesting too deep and a FIFO with exit 2 and one
short line naming the file, the position and the fix -- never "internal error", a traceback
or a hang. ``network_data.json`` with an unknown network type likewise, through ``plan
--source openstack --metadata DIR`` in a private network namespace."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

#: The refusal is one line: the file, the position, the problem and the fix.
SHORT = 400


def alias_bomb(path: Path) -> str:
    """Write a 1 KB "billion laughs" file (9**9 strings if expanded)."""
    lines = ["networks:", '  - &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        lines.append(f"  - &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    path.write_text("\n".join(lines) + "\n")
    return r":7:10: the document expands to more than 100000 values through aliases; "


def duplicate_key(path: Path) -> str:
    path.write_text("name: first\nname: second\n")
    return r":2:1: duplicate key 'name' \(first on line 1\); keep one of them$"


def not_utf8(path: Path) -> str:
    path.write_bytes(b"name: caf\xe9\n")
    return r":1:10: not UTF-8 text \(byte 0xe9 at offset 9\); save the file as UTF-8$"


def too_deep(path: Path) -> str:
    path.write_text("name: " + "[" * 2000 + "]" * 2000 + "\n")
    return r":1:71: nested deeper than 64 levels; flatten the document"


def fifo(path: Path) -> str:
    os.mkfifo(path)
    return r": not a regular file \(a FIFO\); give the path of a file$"


HOSTILE: dict[str, Callable[[Path], str]] = {
    "alias-bomb": alias_bomb,
    "duplicate-key": duplicate_key,
    "not-utf8": not_utf8,
    "too-deep": too_deep,
    "fifo": fifo,
}

COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "config": lambda path: ["--config", str(path), "plan"],
    "topology": lambda path: ["cloud", "plan", "-f", str(path)],
    "scenario": lambda path: ["lab", "up", "--scenario", str(path), "--name", "mhreader"],
}


def multihome(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """This checkout's ``multihome ARGS`` as a separate process, with no cloud credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLOUD"] = "does-not-exist"
    return subprocess.run(
        [*prefix, sys.executable, "-m", "multihome", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_file_exits_2_with_one_short_line(tmp_path: Path, command: str, kind: str) -> None:
    """Each hostile file, given to each command that reads a YAML file: exit 2, nothing on
    stdout, one line on stderr naming the file, the line and column, and the fix."""
    path = tmp_path / f"{kind}.yaml"
    expected = HOSTILE[kind](path)
    done = multihome(*COMMANDS[command](path))
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    error = done.stderr.rstrip("\n")
    assert "\n" not in error and len(error) < SHORT, error[:SHORT]
    assert re.match(rf"multihome: error: {re.escape(str(path))}{expected}", error), error


def test_unknown_network_type_in_network_data_exits_2(
    tmp_path: Path, private_netns: tuple[str, ...]
) -> None:
    """``plan --source openstack`` with a config drive whose network_data.json has a network
    of type ``ipv5``: exit 2 naming the file, the network and the types Nova writes (it used
    to be taken as a network without an address). Run in a private, empty network namespace
    (``unshare --net``), so that no host state is read."""
    latest = tmp_path / "drive" / "openstack" / "latest"
    latest.mkdir(parents=True)
    document = {
        "links": [{"id": "tap0", "type": "ovs", "ethernet_mac_address": "fa:16:3e:00:00:0a"}],
        "networks": [{"id": "network0", "type": "ipv5", "link": "tap0"}],
    }
    (latest / "network_data.json").write_text(json.dumps(document))
    drive = str(tmp_path / "drive")
    done = multihome("plan", "--source", "openstack", "--metadata", drive, prefix=private_netns)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        f"multihome: error: config drive {drive}: openstack/latest/network_data.json: "
        "networks[0].type: network 'network0' has type 'ipv5', which is none of ipv4, "
        "ipv4_dhcp, ipv6, ipv6_dhcp, ipv6_dhcpv6-stateful, ipv6_dhcpv6-stateless, "
        "ipv6_slaac; the metadata is malformed"
    ), done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--root", "{root}", "status"),
        ("--root", "{root}", "status", "--json"),
        ("--root", "{root}/etc", "plan"),
        ("--root", "{root}", "apply"),
        ("persist", "--root", "{root}", "--dry-run"),
    ],
    ids=["status", "status-json", "below-a-file", "apply", "persist"],
)
def test_a_root_that_is_a_file_exits_2_naming_it(
    tmp_path: Path, private_netns: tuple[str, ...], args: tuple[str, ...]
) -> None:
    """``--root`` given a regular file (or a path below one): exit 2, one line naming the
    option, the file and the fix (``--json``: the error object naming ``--root``), never
    "internal error: NotADirectoryError" (status and apply said that), and nothing is
    written next to it. Run in a private, empty network namespace (``unshare --net``): apply
    is refused before it reads anything, but a test never runs it on the host."""
    root = tmp_path / "image.qcow2"
    root.write_text("not a folder\n")
    done = multihome(*(a.format(root=root) for a in args), prefix=private_netns)
    assert done.returncode == 2, done.stderr
    assert "internal error" not in done.stderr + done.stdout
    if "--json" in args:
        error = json.loads(done.stdout)["error"]
        assert (error["code"], error["input"], error["kind"]) == (2, "--root", "InputError")
        assert error["message"].startswith(f"--root {root}: not a directory; "), error
    else:
        assert done.stdout == ""
        given = args[args.index("--root") + 1].format(root=root)
        where = "" if given == str(root) else f" ({root} is)"
        assert done.stderr == (
            f"multihome: error: --root {given}: not a directory{where}; give the folder that "
            "stands for the system's / (a guest's or an image's tree)\n"
        ), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.qcow2"]


def test_a_root_that_does_not_exist_yet_is_taken(
    tmp_path: Path, private_netns: tuple[str, ...]
) -> None:
    """``--root`` naming a folder that does not exist yet (an image tree to be written) is not
    refused as a file would be: ``status --json`` in an empty namespace answers (exit 0)."""
    done = multihome(
        "--root", str(tmp_path / "new" / "tree"), "status", "--json", prefix=private_netns
    )
    assert done.returncode == 0, done.stderr
    assert "error" not in json.loads(done.stdout)
