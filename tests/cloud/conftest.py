"""Fixtures of the cloud tests (defined in cloud_support.py, a uniquely named module, so that
other areas' package-less conftest.py files cannot shadow the helpers the tests import)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # cloud_support

from cloud_support import cloud_env, heat, neutron, nova, nova_env

__all__ = ["cloud_env", "heat", "neutron", "nova", "nova_env"]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``--dist loadgroup`` group this folder's ``xdist_group`` tests on pytest 9.2+.

    pytest-xdist (3.8) tells the scheduler a test's group by appending ``@GROUP`` to its
    ``_nodeid``, which pytest 9.2 no longer reads (pytest-xdist issue 1386): the group is lost
    and every worker would start its own Nova. This sets the suffix where pytest keeps the id
    now, and does nothing where xdist's own suffix took effect or outside ``loadgroup``.
    """
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers only
        return
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:  # an older pytest, where xdist's suffix works
        return
    for item in items:
        names = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        nodeid = item.nodeid
        if not names or nodeid.rfind("@") > nodeid.rfind("]"):
            continue
        item._id = coerce_node_id(f"{nodeid}@{'_'.join(names)}")
