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
