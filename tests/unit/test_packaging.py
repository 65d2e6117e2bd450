"""The Debian package's sources agree with the code and the docs: one version everywhere, the
packaged agent unit is the one multihome-agent(8) documents (with the package's program),
the packaged template unit is persist's (with a package header), and every man page source
has what ``packaging/manpages`` needs for a NAME line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from multihome._version import __version__
from multihome.cloud.client import check_sdk_version
from multihome.errors import EnvironmentMissingError, ExitCode
from multihome.files import PACKAGED_PROGRAM, PROGRAM
from multihome.render.systemd import packaged_unit, unit

REPO = Path(__file__).resolve().parents[2]


def test_one_version() -> None:
    """pyproject.toml, _version.py and debian/changelog's newest entry name one version
    (packaging/build-deb refuses to build otherwise)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    newest = (REPO / "debian/changelog").read_text().splitlines()[0]
    assert project["version"] == __version__
    assert newest.startswith(f"multihome ({__version__}) "), newest


def test_agent_unit_is_the_documented_one() -> None:
    """packaging/multihome-agent.service is the unit multihome-agent(8) shows, running the
    package's /usr/bin/multihome."""
    page = (REPO / "docs/multihome-agent.8.md").read_text()
    section = page.split("## SYSTEMD", 1)[1]
    documented = re.search(r"```\n(\[Unit\].*?)```", section, re.S)
    assert documented is not None
    packaged = (REPO / "packaging/multihome-agent.service").read_text()
    assert f"ExecStart={PACKAGED_PROGRAM} agent" in packaged
    assert packaged == documented.group(1).replace(PROGRAM, PACKAGED_PROGRAM)


def test_packaged_template_is_persists_unit() -> None:
    """The template unit the package installs is persist's, its header aside."""
    packaged = packaged_unit(PACKAGED_PROGRAM)
    persisted = unit(PACKAGED_PROGRAM)
    assert packaged.startswith("# Installed by the multihome package")
    assert "Managed by multihome" not in packaged
    assert packaged.split("[Unit]", 1)[1] == persisted.split("[Unit]", 1)[1]


def test_every_man_page_source_has_a_name() -> None:
    """Each docs/*.[58].md has a title with a description after "—" or a NAME section."""
    pages = sorted((REPO / "docs").glob("*.[58].md"))
    assert len(pages) >= 8
    for page in pages:
        text = page.read_text()
        first = text.splitlines()[0]
        assert re.match(r"# [\w-]+\([58]\)", first), page.name
        assert " — " in first or "\n## NAME\n" in text, page.name


@pytest.mark.parametrize(
    ("found", "refused"), [("0.101.0", True), ("3.3.0", True), ("4.0.0", False)]
)
def test_cloud_refuses_debians_old_openstacksdk(
    found: str, refused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian 12's python3-openstacksdk (0.101) is too old for `multihome cloud`: refused
    with the version found and the fix (exit 1, as a missing openstacksdk), not a failure
    deep inside a call."""
    monkeypatch.setattr("importlib.metadata.version", lambda name: found)
    if not refused:
        check_sdk_version()
        return
    with pytest.raises(EnvironmentMissingError) as caught:
        check_sdk_version()
    assert f"found {found}" in str(caught.value) and "pip install" in str(caught.value)
    assert caught.value.exit_code == ExitCode.FAILURE
