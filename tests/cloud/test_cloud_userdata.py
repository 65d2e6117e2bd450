"""cloud-init user-data: valid cloud-config whose commands the real tools accept."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from cloud_support import REPO, Nova, run_cli

from multihome.cloud.topology import load_topology
from multihome.cloud.userdata import BIN, render

SCENARIO4 = REPO / "examples" / "scenario4-two-ports-two-floating-ips.yaml"


def _check_multihome_argv(argv: list[str]) -> None:
    """The guest's multihome commands parse with multihome's own CLI (or, for a verb whose
    module is not installed here, match multihome-persist(8), docs/multihome-persist.8.md)."""
    from multihome.cli import LAZY_COMMANDS, _module_exists, cli

    verb, *rest = argv
    command = cli.get_command(click.Context(cli), verb)
    if command is None:
        module, _attr = LAZY_COMMANDS[verb]
        assert not _module_exists(module)
        assert verb == "persist" and rest[:1] == ["--backend"]
        assert rest[1] in ("auto", "networkd", "netplan", "networkmanager", "ifcfg", "systemd")
        return
    command.make_context(verb, list(rest))  # raises on an unknown option


def test_user_data_is_valid_cloud_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`cloud user-data` prints #cloud-config that yaml parses, whose runcmd installs
    multihome and then runs apply and persist with arguments multihome accepts, and that
    cloud-init's own schema check accepts."""
    code, out, err = run_cli(["cloud", "user-data", "-f", str(SCENARIO4)], capsys)
    assert code == 0, err
    assert out.startswith("#cloud-config\n")
    doc = yaml.safe_load(out)
    assert set(doc) == {"packages", "runcmd"}
    runcmd = doc["runcmd"]
    assert all(isinstance(c, list) and all(isinstance(a, str) for a in c) for c in runcmd)
    assert runcmd[0] == ["python3", "-m", "venv", "/opt/multihome"]
    assert runcmd[1][:2] == ["/opt/multihome/bin/pip", "install"] and runcmd[1][-1] == ("multihome")
    assert runcmd[2] == ["ln", "-sf", "/opt/multihome/bin/multihome", BIN]
    guest = [c for c in runcmd if c[0] == BIN]
    assert [c[1] for c in guest] == ["apply", "persist"]
    for argv in guest:
        _check_multihome_argv(argv[1:])
    if shutil.which("cloud-init") is None:
        pytest.skip("cloud-init is not installed (make deps installs it from .ci/apt.d)")
    path = tmp_path / "user-data"
    path.write_text(out)
    done = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid cloud-config" in done.stdout


@pytest.mark.parametrize(
    ("guest", "options"),
    [
        (
            "wheels: /var/lib/multihome-wheels",
            ["--no-index", "--find-links", "/var/lib/multihome-wheels"],
        ),
        (
            "wheels: http://10.0.0.5/wheels/",
            ["--no-index", "--find-links", "http://10.0.0.5/wheels/"],
        ),
        ("index_url: http://10.0.0.5/simple/", ["--index-url", "http://10.0.0.5/simple/"]),
    ],
)
def test_user_data_installs_from_a_wheel_directory_or_index(
    tmp_path: Path, guest: str, options: list[str]
) -> None:
    """guest.wheels (air-gapped: no index at all) and guest.index_url (a mirror) become pip's
    options, before the requirement; tests/reboot/test_cloudinit.py runs the first under
    cloud-init in a guest without internet."""
    text = SCENARIO4.read_text().replace("  package: multihome", f"  package: multihome\n  {guest}")
    path = tmp_path / "t.yaml"
    path.write_text(text)
    doc = yaml.safe_load(render(load_topology(path)))
    assert doc["runcmd"][1] == [
        "/opt/multihome/bin/pip",
        "install",
        "--quiet",
        *options,
        "multihome",
    ]


def test_user_data_bad_wheels_exits_2(tmp_path: Path) -> None:
    """A relative wheel directory: exit 2, the key, its line and the fix; nothing printed on
    stdout, no traceback."""
    path = tmp_path / "t.yaml"
    path.write_text(SCENARIO4.read_text().replace("  package: multihome", "  wheels: ./wheels"))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "multihome"), "cloud", "user-data", "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "guest.wheels: './wheels' is not a URL or an absolute path on the guest" in done.stderr
    assert "Traceback" not in done.stderr


def test_user_data_without_install(tmp_path: Path) -> None:
    """guest.install: none runs the image's multihome and installs nothing."""
    text = SCENARIO4.read_text().replace("install: pip", "install: none")
    path = tmp_path / "t.yaml"
    path.write_text(text)
    doc = yaml.safe_load(render(load_topology(path)))
    assert "packages" not in doc
    assert doc["runcmd"] == [["multihome", "apply"], ["multihome", "persist", "--backend", "auto"]]


@pytest.mark.xdist_group("nova")
@pytest.mark.parametrize("literal", [False, True], ids=["multihome", "literal"])
def test_user_data_reaches_the_server(
    literal: bool, nova_env: Nova, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """apply hands the real Nova the user-data the topology asks for (multihome's
    cloud-config, or a literal block) and Nova stores it with the server, byte for byte;
    the server has its config drive and key pair."""
    text = (
        SCENARIO4.read_text()
        .replace("name: scenario4", f"name: ud4{int(literal)}")
        .replace("s4-", f"ud4{int(literal)}-")
        .replace("multiport-test", f"ud4{int(literal)}-vm")
    )
    own = "#cloud-config\nruncmd:\n  - [touch, /run/from-multihome-test]\n"
    if literal:
        assert "    user_data: multihome\n" in text
        text = text.replace(
            "    user_data: multihome\n",
            "    user_data: |\n" + "".join(f"      {line}\n" for line in own.splitlines()),
        )
    path = tmp_path / "t.yaml"
    path.write_text(text)
    topo = load_topology(path)
    code, _out, err = run_cli(["cloud", "apply", "-f", str(path)], capsys)
    assert code == 0, err
    try:
        conn = nova_env.connect()
        (server,) = conn.compute.servers(tags=topo.tag)
        server = conn.compute.get_server(server.id)  # user_data: admin, microversion 2.3+
        stored = base64.b64decode(server.user_data).decode()
        assert stored == (own if literal else render(topo, topo.servers[0]))
        if not literal:
            doc = yaml.safe_load(stored)
            assert doc["runcmd"][-2:] == [
                [BIN, "apply"],
                [BIN, "persist", "--backend", "auto"],
            ]
        assert server.has_config_drive in (True, "True")
        assert server.key_name == "mykey"
    finally:
        assert run_cli(["cloud", "destroy", "-f", str(path)], capsys)[0] == 0
