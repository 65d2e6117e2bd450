"""Reading back the systemd-style INI files multihome renders (``.network`` files, drop-ins),
whose sections repeat (one ``[Route]`` or ``[RoutingPolicyRule]`` per route or rule), which
:mod:`configparser` cannot hold."""

from __future__ import annotations


def sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """A systemd ini file as (section, keys) in order (each section name may repeat)."""
    found: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            found.append((line.strip("[]"), {}))
        else:
            key, value = line.split("=", 1)
            found[-1][1][key] = value
    return found
