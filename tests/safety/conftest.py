"""Fixtures of the safety tests (defined in safety_util, which the tests import by name)."""

from safety_util import deadgw_lab, lab

__all__ = ["deadgw_lab", "lab"]
