"""multihome.files' text forms of paths (on the no-op apply's path, which imports no
``pathlib``) give exactly what ``pathlib`` gives: the same normalisation, joins, ``--root``
prefix, ``absolute()``, parents and names, compared on generated paths; ``exists`` and
``is_dir`` answer as ``Path.exists`` and ``Path.is_dir`` on real files."""

from __future__ import annotations

import os
from pathlib import Path, PurePath, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multihome import files

#: Path texts made of the parts that matter to a normalisation: slashes (leading runs of 1,
#: 2 and 3 too), ``.``, ``..``, names with dots and spaces, and nothing at all.
PARTS = st.sampled_from(["", ".", "..", "a", "b.c", ".d", "e f", "..g", "/", "//", "///"])
PATHS = st.lists(PARTS, max_size=8).map("/".join) | st.lists(PARTS, max_size=8).map("".join)


@given(PATHS)
def test_normal_is_purepath_text(path: str) -> None:
    """``normal`` is ``str(PurePosixPath(path))``."""
    assert files.normal(path) == str(PurePosixPath(path))


@given(PATHS, PATHS)
def test_join_is_purepath_division(base: str, name: str) -> None:
    """``join`` is ``str(PurePosixPath(base) / name)``, for text and for ``Path`` arguments."""
    expected = str(PurePosixPath(base) / name)
    assert files.join(base, name) == expected
    assert files.join(Path(base), PurePosixPath(name)) == expected


def old_under_root(root: Path, path: PurePath | str) -> Path:
    """``under_root`` as it was written with pathlib (before the text form)."""
    return root / str(path).lstrip("/")


@given(PATHS, PATHS)
def test_rooted_is_under_root_of_pathlib(root: str, path: str) -> None:
    """``rooted`` (text) and ``under_root`` (its ``Path``) give what joining ``path`` below
    ``root`` with pathlib gave, whether ``root`` and ``path`` come as text or as paths."""
    expected = old_under_root(Path(root), path)
    assert files.rooted(root, path) == str(expected)
    assert files.rooted(Path(root), PurePosixPath(path)) == str(
        old_under_root(Path(root), Path(path))
    )
    assert files.under_root(Path(root), path) == expected
    assert isinstance(files.under_root(root, path), Path)


@given(PATHS)
def test_absolute_is_path_absolute(path: str) -> None:
    """``absolute`` is ``str(Path(path).absolute())``: ``..`` kept, nothing resolved."""
    assert files.absolute(path) == str(Path(path).absolute())
    assert files.absolute(Path(path)) == str(Path(path).absolute())


def test_absolute_below_another_working_directory(tmp_path: Path) -> None:
    """A relative path is taken below the working directory of the moment."""
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        for path in ("", ".", "x/../y", "a//b/"):
            assert files.absolute(path) == str(Path(path).absolute())
    finally:
        os.chdir(here)


@given(PATHS)
def test_parent_and_name_are_purepaths(path: str) -> None:
    """``parent`` and ``name_of`` are ``PurePosixPath(path).parent`` and ``.name``; the chain
    of parents ends where pathlib's does (a root, or ``.``)."""
    pure = PurePosixPath(path)
    assert files.parent(path) == str(pure.parent)
    assert files.name_of(path) == pure.name
    assert files.parent(files.parent(path)) == str(pure.parent.parent)


@given(PATHS)
def test_anchored_is_anchor_and_relative_to(path: str) -> None:
    """``anchored`` is ``PurePosixPath(path).anchor`` and the path relative to it; joined
    again they are the path."""
    pure = PurePosixPath(path)
    anchor, rest = files.anchored(path)
    assert (anchor, rest) == (pure.anchor, str(pure.relative_to(pure.anchor)))
    assert files.join(anchor, rest) == str(pure)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a file, a folder, a link to each, a dangling link and a link loop."""
    base = tmp_path_factory.mktemp("paths")
    (base / "file").write_text("x")
    (base / "folder").mkdir()
    (base / "to-file").symlink_to("file")
    (base / "to-folder").symlink_to("folder")
    (base / "dangling").symlink_to("nowhere")
    (base / "loop").symlink_to("loop")
    return base


@pytest.mark.parametrize(
    "name",
    [
        "file",
        "folder",
        "to-file",
        "to-folder",
        "dangling",
        "loop",
        "loop/x",
        "missing",
        "file/below",
        "folder/.",
        "nul\0byte",
    ],
)
def test_exists_and_is_dir_are_pathlibs(tree: Path, name: str) -> None:
    """``exists`` and ``is_dir`` answer as ``Path.exists`` and ``Path.is_dir`` (a missing
    path, one below a file, a link loop, a dangling link, a NUL byte)."""
    path = tree / name
    assert files.exists(str(path)) == path.exists()
    assert files.is_dir(str(path)) == path.is_dir()


def test_make_dirs_creates_each_missing_parent(tmp_path: Path) -> None:
    """``make_dirs`` of a text path creates the missing folders with the mode asked,
    leaving an existing one as it was."""
    (tmp_path / "have").mkdir(mode=0o700)
    files.make_dirs(f"{tmp_path}/have/a//b/", 0o750)
    assert (tmp_path / "have").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "have/a").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "have/a/b").stat().st_mode & 0o777 == 0o750
