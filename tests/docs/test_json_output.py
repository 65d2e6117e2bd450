"""Every command's ``--json`` document is versioned and documented: the keys of real output
(a lab's guest, a temporary ``--root``) must all be in its man page's "JSON OUTPUT" section,
and a failure prints one ``{"error": ...}`` object with the exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from docs_util import documented_json, lab, needs_lab, parse_json, run_cli, undocumented

from multihome.files import JSON_SCHEMA


def _json_commands() -> set[str]:
    """Every command of the CLI (subgroups included) that takes ``--json``."""
    from multihome.cli import cli

    found: set[str] = set()

    def walk(command: click.Command, words: tuple[str, ...]) -> None:
        if any("--json" in getattr(p, "opts", ()) for p in command.params):
            found.add(" ".join(words))
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    walk(sub, (*words, name))

    walk(cli, ())
    return found


def test_every_json_command_is_documented() -> None:
    """Each command with ``--json`` has a block in docs/ listing its keys, and no block names
    a command that does not exist (the failure document is the extra one)."""
    documented = set(documented_json())
    assert documented - {"COMMAND"} == _json_commands()
    assert "COMMAND" in documented


def test_an_undocumented_key_fails_the_check() -> None:
    """The checker itself: a key the docs do not list is reported, at the top and inside an
    object whose keys are documented, and a free-form map entry is not."""
    docs = documented_json()["status"]
    real: dict[str, Any] = {"schema": 1, "primary": "eth0", "interfaces": [{"name": "eth0"}]}
    assert undocumented(real, docs) == []
    assert undocumented(dict(real, surprise=1), docs) == ["surprise"]
    real["interfaces"][0]["color"] = "red"
    assert undocumented(real, docs) == ["interfaces[].color"]
    up = documented_json()["lab up"]
    assert undocumented({"schema": 1, "namespaces": {"anything": "x"}}, up) == []


def _check(outputs: dict[str, list[Any]]) -> None:
    docs = documented_json()
    problems = []
    for command, documents in outputs.items():
        for document in documents:
            assert document["schema"] == JSON_SCHEMA, command
            if isinstance(document.get("error"), dict):  # explain has an "error" of its own
                bad = undocumented(document, docs["COMMAND"])
            else:
                bad = undocumented(document, docs[command])
            problems += [f"{command} --json: undocumented key {key}" for key in bad]
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(needs_lab() is not None, reason=str(needs_lab()))
def test_real_output_matches_the_docs(tmp_path: Path) -> None:
    """Run every non-cloud ``--json`` command in a lab (guest commands with a temporary
    --root), before and after apply, on success and failure: every key is documented, every
    document has the schema version, and a failure's document carries its exit code."""
    outputs: dict[str, list[Any]] = {}
    root = str(tmp_path / "root")
    networkd = tmp_path / "image"
    (networkd / "lib/systemd").mkdir(parents=True)
    (networkd / "lib/systemd/systemd-networkd").write_text("#!/bin/sh\n")

    def record(command: str, *args: str, code: int | None = 0) -> Any:
        done = run_cli(*args, "--json")
        if code is not None:
            assert done.returncode == code, (args, done.stdout, done.stderr)
        document = parse_json(done)
        outputs.setdefault(command, []).append(document)
        if isinstance(document.get("error"), dict):  # explain has an "error" of its own
            assert document["error"]["code"] == done.returncode != 0
        return document

    record("lab list", "lab", "list")
    with lab() as (name, up):
        guest = ("lab", "exec", "--name", name, "--", "multihome", "--root", root)
        outputs["lab up"] = [up]
        record("lab up", "lab", "up", "--name", name, code=2)  # the name is taken
        record("lab status", "lab", "status", "--name", name)
        record("lab probe", "lab", "probe", "--name", name, "--expect", "before")
        for command in ("status", "plan", "verify", "doctor"):
            record(command, *guest, command, code=None)
        record("explain", *guest, "explain", "--to", "198.51.100.10")
        record("explain", *guest, "explain", "--to", "2001:db8:ffff::10", "--proto", "tcp")
        record("explain", *guest, "explain", "--to", "fe80::1", "--oif", "eth0")
        record("confirm", *guest, "confirm", code=1)
        record("agent status", *guest, "agent", "status", code=1)
        record("status", *guest, "--config", str(tmp_path / "nothing.yaml"), "status", code=2)
        done = run_cli(*guest, "apply")
        assert done.returncode == 0, done.stderr
        for command in ("status", "plan", "verify", "doctor", "rollback", "reset"):
            record(command, *guest, command, code=None)
        record("persist", *guest, "persist", "--backend", "networkd", "--root", str(networkd))
        record("persist", *guest, "persist", "--root", str(tmp_path / "empty"), code=2)
        attached = record("lab attach-port", "lab", "attach-port", "--name", name)
        port = attached["port"]["name"]
        record("lab detach-port", "lab", "detach-port", "--name", name, port)
        record("lab down", "lab", "down", "--name", name)
    _check(outputs)
    assert outputs["doctor"][0]["problems"], "the unfixed lab must show problems"


def test_cloud_serialisers_match_the_docs() -> None:
    """The cloud commands need a cloud; their documents are built from these serialisers,
    whose keys must be the documented ones."""
    from multihome.cloud.apply import PortResult
    from multihome.cloud.plan import Action, CloudPlan
    from multihome.cloud.shortcuts import AttachResult, FixedAddress

    docs = documented_json()
    action = Action("create", "port", "vm1-port2")
    plan = dict(CloudPlan((action,), kept=(action,)).to_json(), topology="t", tag="multihome:t")
    port = PortResult("vm1", "vm1-port2", ("10.0.0.5",), None)
    apply = {"topology": "t", "changed": 1, "api_calls": 3, "ports": [port.to_json()]}
    attached = AttachResult(
        PortResult("vm1", "vm1-port2", ("10.0.0.5", "2001:db8::5"), "203.0.113.5"),
        (
            FixedAddress("10.0.0.5", 4, "v4", None, "203.0.113.5"),
            FixedAddress("2001:db8::5", 6, "v6", "slaac", None),
        ),
    )
    assert attached.notes, "a port with an IPv6 address has the note"
    for command, document in (
        ("cloud plan", plan),
        ("cloud apply", apply),
        ("cloud attach-port", attached.to_json()),
    ):
        assert undocumented(dict(document, schema=JSON_SCHEMA), docs[command]) == [], command


def test_cloud_validate_output_matches_the_docs() -> None:
    """`cloud validate --json` needs no cloud: its real output (an example topology) has only
    documented keys and the schema version."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    done = run_cli(
        "cloud", "validate", "-f", str(examples / "scenario1-private-with-gateway.yaml"), "--json"
    )
    assert done.returncode == 0, done.stderr
    _check({"cloud validate": [parse_json(done)]})
