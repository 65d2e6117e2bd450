"""No secret of the cloud credentials leaves multihome: not in an error message, not in a
``--json`` document, not in user-data, not in a log line.

The adversary is a real HTTP endpoint on 127.0.0.1 standing in for Keystone that answers
every request with an error echoing the request back (body and headers), as a misconfigured
proxy or a chatty server may: the password keystoneauth sends comes back inside the error
text. Every test uses a recognisable password and searches all of stdout and stderr for it.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from cloud_support import REPO

PASSWORD = "s3cr3t-PW-4711-multihome"
EXAMPLE = REPO / "examples" / "scenario1-private-with-gateway.yaml"


class _Echo(http.server.BaseHTTPRequestHandler):
    """Every request gets a Keystone-style 400 whose message is the request itself."""

    seen: ClassVar[list[str]] = []

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        request = f"{self.command} {self.path} {dict(self.headers)} {body}"
        type(self).seen.append(request)
        data = json.dumps({"error": {"code": 400, "title": "Bad Request", "message": request}})
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data.encode())

    do_GET = do_POST = do_PUT = do_DELETE = _echo

    def log_message(self, *_args: object) -> None:
        """Quiet: the test reads ``seen``."""


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    """The echoing endpoint's URL (a thread of this process)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v3"
    finally:
        server.shutdown()
        server.server_close()


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def _multihome(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "multihome"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=120,
    )


def _clouds_yaml(path: Path, auth_url: str) -> Path:
    path.write_text(
        "clouds:\n  echo:\n    auth:\n"
        f"      auth_url: {auth_url}\n      username: u\n      password: {PASSWORD}\n"
        "      project_name: p\n      user_domain_name: Default\n"
        "      project_domain_name: Default\n    region_name: RegionOne\n"
    )
    return path


def test_a_server_echoing_the_password_never_gets_it_shown(echo: str, tmp_path: Path) -> None:
    """clouds.yaml with a password, a Keystone that echoes the request: plan, apply (text and
    --json) and attach-port fail without the password anywhere in their output; the
    endpoint did receive it (so the error really carried it), and the output shows
    ``[secret]`` where it was cut out."""
    _Echo.seen.clear()
    env = _env(tmp_path, OS_CLIENT_CONFIG_FILE=str(_clouds_yaml(tmp_path / "c.yaml", echo)))
    runs = [
        ("cloud", "plan", "-f", str(EXAMPLE), "--os-cloud", "echo"),
        ("cloud", "plan", "-f", str(EXAMPLE), "--os-cloud", "echo", "--json"),
        ("cloud", "apply", "-f", str(EXAMPLE), "--os-cloud", "echo", "--json"),
        ("cloud", "attach-port", "vm1", "--network", "n", "--os-cloud", "echo", "--json"),
    ]
    for args in runs:
        done = _multihome(*args, env=env, cwd=tmp_path)
        assert done.returncode in (1, 2), done.stderr
        assert PASSWORD not in done.stdout + done.stderr, args
        assert "Traceback" not in done.stderr
        if "--json" in args:
            assert json.loads(done.stdout)["error"]["code"] == done.returncode
    assert any(PASSWORD in request for request in _Echo.seen)
    shown = _multihome(*runs[0], env=env, cwd=tmp_path)
    assert "[secret]" in shown.stderr, shown.stderr


def test_openrc_variables_are_cut_out_too(echo: str, tmp_path: Path) -> None:
    """The same with an openrc file's OS_* variables instead of clouds.yaml."""
    env = _env(
        tmp_path,
        OS_AUTH_URL=echo,
        OS_USERNAME="u",
        OS_PASSWORD=PASSWORD,
        OS_PROJECT_NAME="p",
        OS_USER_DOMAIN_NAME="Default",
        OS_PROJECT_DOMAIN_NAME="Default",
    )
    done = _multihome("cloud", "plan", "-f", str(EXAMPLE), "--json", env=env, cwd=tmp_path)
    assert done.returncode in (1, 2), done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "[secret]" in done.stdout + done.stderr


def test_a_broken_clouds_yaml_is_named_by_line_without_its_text(tmp_path: Path) -> None:
    """A clouds.yaml whose YAML breaks on the password's line: the error names the file, the
    line and the column, and never quotes the line."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  broken:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n"
        f"      password: {PASSWORD}\n     username: [u\n"
    )
    env = _env(tmp_path, OS_CLIENT_CONFIG_FILE=str(clouds))
    for extra in ((), ("--json",)):
        done = _multihome(
            "cloud",
            "plan",
            "-f",
            str(EXAMPLE),
            "--os-cloud",
            "broken",
            *extra,
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 2, done.stderr
        assert f"{clouds}:6:" in done.stderr and "not valid YAML" in done.stderr
        assert PASSWORD not in done.stdout + done.stderr


def test_user_data_with_a_credential_is_refused(tmp_path: Path) -> None:
    """A server whose literal user_data holds the cloud password: `cloud user-data` and
    `cloud apply` refuse (exit 2) before contacting any cloud, without showing it; a
    guest.package URL with user:password@ is refused at load."""
    clouds = _clouds_yaml(tmp_path / "c.yaml", "http://127.0.0.1:9/v3")
    env = _env(tmp_path, OS_CLIENT_CONFIG_FILE=str(clouds))
    topology = tmp_path / "t.yaml"
    topology.write_text(
        EXAMPLE.read_text().replace(
            "    key_name: mykey\n",
            f"    key_name: mykey\n    user_data: |\n      #!/bin/sh\n      echo {PASSWORD}\n",
        )
    )
    assert PASSWORD in topology.read_text()
    for verb in (("user-data",), ("apply", "--os-cloud", "echo")):
        done = _multihome("cloud", *verb, "-f", str(topology), env=env, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "user_data contains a secret of the cloud credentials" in done.stderr
        assert PASSWORD not in done.stdout + done.stderr
    topology.write_text(
        EXAMPLE.read_text() + "guest:\n  package: https://u:pw@files.example/multihome.whl\n"
    )
    done = _multihome("cloud", "user-data", "-f", str(topology), env=env, cwd=tmp_path)
    assert done.returncode == 2 and "guest.package" in done.stderr
    assert "pw@" not in done.stdout + done.stderr
