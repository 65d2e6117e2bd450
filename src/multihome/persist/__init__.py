"""Persistence of the policy in the distribution's own network configuration.

See :mod:`multihome.persist.core` (library) and :mod:`multihome.persist.cli` (commands).
"""

from multihome.persist.core import (
    BACKENDS,
    Choice,
    FileChange,
    PersistResult,
    choose_backend,
    gather_facts,
    persist,
    unpersist,
)

__all__ = [
    "BACKENDS",
    "Choice",
    "FileChange",
    "PersistResult",
    "choose_backend",
    "gather_facts",
    "persist",
    "unpersist",
]
