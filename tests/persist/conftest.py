"""Fixtures of the persist tests (defined in persist_util, which the tests import by name)."""

from persist_util import make_lab, namespaces

__all__ = ["make_lab", "namespaces"]
