"""multihome: source-based policy routing for multi-port Linux VMs.

The library API (no printing, no exiting below the CLI)::

    from multihome import load_config, compute_policy, make_plan, NetlinkBackend
"""

from multihome._version import __version__
from multihome.config import Config, load_config
from multihome.errors import (
    ApplyError,
    ConfigError,
    ExitCode,
    InputError,
    MultihomeError,
    NotPermittedError,
)
from multihome.model import Address, HostState, Link, Route, Rule, Sysctl, Table
from multihome.plan import Change, Plan, make_plan
from multihome.policy import DesiredState, compute_policy

__all__ = [
    "Address",
    "ApplyError",
    "Change",
    "Config",
    "ConfigError",
    "DesiredState",
    "ExitCode",
    "HostState",
    "InputError",
    "Link",
    "MultihomeError",
    "NotPermittedError",
    "Plan",
    "Route",
    "Rule",
    "Sysctl",
    "Table",
    "__version__",
    "compute_policy",
    "load_config",
    "make_plan",
]
