"""Lease files found as before by the fast forms of :mod:`multihome.leasefiles`.

``leasefiles.glob_sorted`` (one folder listed, names compared by prefix and suffix) finds
exactly what ``sorted(Path.glob(pattern))`` finds, for the lease folders' kind of pattern and
any folder contents: hidden names, names like the pattern's parts, folders, broken symbolic
links, a missing folder, a file where the folder should be."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from multihome.leasefiles import DHCLIENT_GLOBS, dhclient_lease_files, glob_sorted

#: Name pieces that make prefixes and suffixes overlap, partly match or nearly match.
PIECES = st.sampled_from(["dhclient", ".", "lease", "leases", "s", "-eth0", "x", "*", ""])
NAMES = st.lists(
    st.lists(PIECES, min_size=1, max_size=4)
    .map("".join)
    .filter(lambda n: n not in ("", ".", "..")),
    max_size=8,
    unique=True,
)
KINDS = st.sampled_from(["file", "dir", "dangling"])
PATTERNS = st.sampled_from(
    sorted({p.rpartition("/")[2] for p in DHCLIENT_GLOBS} | {"*", "dhclient.*.leases", "x*x"})
)


@settings(max_examples=150, deadline=None)
@given(names=NAMES, kinds=st.lists(KINDS, min_size=8, max_size=8), pattern=PATTERNS)
def test_glob_sorted_finds_what_path_glob_finds(
    names: list[str], kinds: list[str], pattern: str
) -> None:
    """The same sorted paths as ``Path.glob`` in a folder of files, folders and dangling
    links with names built from the patterns' own pieces."""
    with tempfile.TemporaryDirectory() as top:
        folder = Path(top)
        for name, kind in zip(names, kinds, strict=False):
            if kind == "dir":
                (folder / name).mkdir()
            elif kind == "dangling":
                os.symlink(folder / "nowhere", folder / name)
            else:
                (folder / name).write_text("")
        assert glob_sorted(folder, pattern) == [str(p) for p in sorted(folder.glob(pattern))]


def test_glob_sorted_of_a_missing_folder_or_a_file_is_empty(tmp_path: Path) -> None:
    """A missing folder and a file in the folder's place have no matches, as with
    ``Path.glob``; a pattern it does not handle itself (two stars) goes to ``Path.glob``."""
    (tmp_path / "file").write_text("")
    (tmp_path / "a.b.c").write_text("")
    for folder in (tmp_path / "missing", tmp_path / "file"):
        assert glob_sorted(folder, "*.lease") == sorted(folder.glob("*.lease")) == []
    assert glob_sorted(tmp_path, "a*b*c") == [str(tmp_path / "a.b.c")]


def test_a_running_dhclients_lease_file_is_found(tmp_path: Path) -> None:
    """A process named ``dhclient`` (Python started through a link of that name) with
    ``-lf FILE`` among its arguments: its file is among :func:`dhclient_lease_files`; once it
    has ended, it is not."""
    program = tmp_path / "dhclient"
    program.symlink_to(sys.executable)
    lease = tmp_path / "dhclient.eth7.leases"
    with subprocess.Popen(
        [program, "-c", "import sys; print(flush=True); sys.stdin.read()", "-lf", lease],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == b"\n"
        assert str(lease) in dhclient_lease_files()
        proc.communicate(b"")
    assert str(lease) not in dhclient_lease_files()


def test_the_signature_with_the_state_directory_given_is_the_same(tmp_path: Path) -> None:
    """The no-op apply passes the state directory it holds the lock of (not looked up
    again): the signature, the agent's lease files in it included, is the one computed
    without it."""
    from multihome.leasefiles import host_signature
    from multihome.transaction.statedir import StateDir

    state = StateDir.current(tmp_path)
    state.ensure()
    Path(state.file("dhclient.p1.leases")).write_text("lease {}\n")
    dhcp = tmp_path / "var/lib/dhcp"
    dhcp.mkdir(parents=True)
    (dhcp / "dhclient.p2.leases").write_text("lease {}\n")
    with_state = host_signature(tmp_path, state)
    assert f"{Path(state.path) / 'dhclient.p1.leases'}\0" in with_state
    assert f"{dhcp / 'dhclient.p2.leases'}\0" in with_state
    assert with_state == host_signature(tmp_path)
