"""The collection's source is ansible-lint clean (its ``production`` profile, offline), with
the collection on the collections path as ansible-galaxy would install it."""

from __future__ import annotations

import shutil
from pathlib import Path

from ansible_support import COLLECTION, Ansible, ansible_venv


def test_ansible_lint_is_clean(tmp_path: Path) -> None:
    """ansible-lint (rules, syntax check of the role and playbook with the collection
    resolvable, galaxy metadata) reports no failure and no warning."""
    ansible = Ansible(ansible_venv(), tmp_path)
    tree = tmp_path / "collections/ansible_collections/multihome/guest"
    shutil.copytree(COLLECTION, tree, ignore=shutil.ignore_patterns("*.tar.gz", ".ansible"))
    done = ansible.run("ansible-lint", "--offline", "--nocolor", "--profile=production", cwd=tree)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Passed: 0 failure(s), 0 warning(s)" in output


def test_the_roles_unit_is_the_packaged_unit() -> None:
    """The role's agent unit is the Debian package's (packaging/multihome-agent.service) but
    for its managed header and the program it starts (the role's link, extra arguments)."""
    repo = COLLECTION.parents[2]
    packaged = (repo / "packaging/multihome-agent.service").read_text().splitlines()
    template = (COLLECTION / "roles/fleet/templates/multihome-agent.service.j2").read_text()
    lines = template.splitlines()
    assert lines[0] == "# {{ ansible_managed }}"
    execstart = (
        "ExecStart={{ fleet_link }} agent{{ (' ' + fleet_agent_args) if fleet_agent_args else '' }}"
    )
    assert lines[1:] == [execstart if x.startswith("ExecStart=") else x for x in packaged]
