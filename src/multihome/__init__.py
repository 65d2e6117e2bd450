"""multihome: source-based policy routing for multi-port Linux VMs.

The library API (no printing, no exiting below the CLI)::

    from multihome import load_config, compute_policy, make_plan, NetlinkBackend

The names below are imported on first use (PEP 562), so that ``import multihome`` -- and with
it every ``multihome`` command, ``--version`` included -- starts without loading the model,
the policy and the configuration parser.
"""

from multihome._version import __version__

# Not ``typing.TYPE_CHECKING``: typing (with re, enum, functools) is most of what
# ``multihome --version`` would otherwise import. Type checkers treat the name alike.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from multihome.backend.netlink import NetlinkBackend
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

#: Public name -> the module that defines it.
_EXPORTS = {
    "Address": "multihome.model",
    "ApplyError": "multihome.errors",
    "Change": "multihome.plan",
    "Config": "multihome.config",
    "ConfigError": "multihome.errors",
    "DesiredState": "multihome.policy",
    "ExitCode": "multihome.errors",
    "HostState": "multihome.model",
    "InputError": "multihome.errors",
    "Link": "multihome.model",
    "MultihomeError": "multihome.errors",
    "NetlinkBackend": "multihome.backend.netlink",
    "NotPermittedError": "multihome.errors",
    "Plan": "multihome.plan",
    "Route": "multihome.model",
    "Rule": "multihome.model",
    "Sysctl": "multihome.model",
    "Table": "multihome.model",
    "compute_policy": "multihome.policy",
    "load_config": "multihome.config",
    "make_plan": "multihome.plan",
}

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
    "NetlinkBackend",
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


def __getattr__(name: str) -> "Any":  # quoted: no __future__ import (--version's start-up)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'multihome' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
