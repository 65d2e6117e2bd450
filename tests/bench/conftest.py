"""Fixtures of the bench tests (defined in bench_util, which the tests import by name)."""

from bench_util import lab

__all__ = ["lab"]
