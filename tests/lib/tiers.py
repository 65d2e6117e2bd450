"""The test tiers: which tests need root and network namespaces (the ``netns`` marker).

Every folder's ``conftest.py`` says it once, in its ``pytest_collection_modifyitems``, instead
of a mark on each test: ``mark_netns(items, __file__)`` for a folder whose every test needs
root, ``mark_netns(items, __file__, fixtures=(...))`` for a folder whose root-needing tests are
those that request one of its namespace fixtures. ``pytest -m "not netns"`` (``make unit``
and the rootless part of the suite) then runs as an ordinary user without a failure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

import pytest


def mark_netns(
    items: Iterable[pytest.Item], conftest: str, *, fixtures: Collection[str] | None = None
) -> list[pytest.Item]:
    """Mark with ``netns`` the tests collected in the folder of ``conftest`` (and below it):
    all of them, or, with ``fixtures``, those that request one of these fixtures (directly or
    through another fixture). Returns the tests it marked."""
    folder = Path(conftest).resolve().parent
    marked = []
    for item in items:
        if not item.path.resolve().is_relative_to(folder):
            continue
        requested = set(getattr(item, "fixturenames", ()))  # test functions have them
        if fixtures is not None and not set(fixtures) & requested:
            continue
        item.add_marker(pytest.mark.netns)
        marked.append(item)
    return marked
