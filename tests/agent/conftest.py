"""Fixtures of the agent tests (defined in agent_util, which the tests import by name)."""

from agent_util import lab, notify_socket

__all__ = ["lab", "notify_socket"]
