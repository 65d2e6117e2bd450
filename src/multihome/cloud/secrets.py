"""The cloud credentials multihome must never show: found where openstacksdk finds them, and
cut out of every message, ``--json`` document and user-data.

openstacksdk reads secrets from ``OS_*`` variables (``OS_PASSWORD``, ``OS_TOKEN``,
``OS_APPLICATION_CREDENTIAL_SECRET``, ...) and from clouds.yaml / secure.yaml entries
(``auth: {password: ...}``). A cloud, a proxy or a library can put them back into an error
text (a server that echoes the request body, a YAML error that quotes the line). The CLI's one
error path (:func:`multihome.cli.main`) passes the message of a failed ``cloud`` command
through :func:`redact`; ``cloud apply`` refuses user-data that contains one
(:func:`check_user_data`). Nothing here logs or prints a secret, and the values live only in
the call that needs them (no cache).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Keys whose values are secrets (in ``auth:`` of a cloud entry, or as ``OS_<KEY>``).
SECRET_KEYS = frozenset(
    {
        "password",
        "token",
        "application_credential_secret",
        "secret",
        "client_secret",
        "access_secret",
        "passcode",
        "totp",
    }
)
#: Shorter values are not cut (they would mangle ordinary words); no real secret is this short.
MIN_SECRET = 4
#: A file larger than this is not a clouds.yaml (nor read for its secrets).
MAX_CLOUDS_YAML = 1 << 20
SHOWN = "[secret]"


def config_files(env: Mapping[str, str]) -> list[Path]:
    """clouds.yaml and secure.yaml files openstacksdk reads, in its order (those that exist)."""
    try:
        from openstack.config import loader
    except ImportError:  # no openstacksdk: no cloud, no secret from its files
        return []
    names = [env.get("OS_CLIENT_CONFIG_FILE", ""), env.get("OS_CLIENT_SECURE_FILE", "")]
    names += [*loader.CONFIG_FILES, *loader.SECURE_FILES]
    return [Path(n) for n in dict.fromkeys(names) if n and os.path.isfile(n)]


def known_secrets(env: Mapping[str, str] | None = None) -> set[str]:
    """Every secret value of the ``OS_*`` variables and of the clouds.yaml files."""
    env = os.environ if env is None else env
    found = {
        value
        for key, value in env.items()
        if key.startswith("OS_") and key[3:].lower() in SECRET_KEYS
    }
    for path in config_files(env):
        found |= set(_values(_load(path)))
    return {s for s in found if len(s) >= MIN_SECRET}


def _load(path: Path) -> Any:
    import yaml

    try:
        if path.stat().st_size > MAX_CLOUDS_YAML:
            return None
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # openstacksdk cannot use it either; check_clouds_yaml says why


def _values(node: Any) -> Iterable[str]:
    """The secret values anywhere in a parsed clouds.yaml."""
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key).lower() in SECRET_KEYS and isinstance(value, (str, int)):
                yield str(value)
            else:
                yield from _values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _values(item)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``[secret]`` (longest first)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= MIN_SECRET:
            text = text.replace(secret, SHOWN)
    return text


def check_clouds_yaml(env: Mapping[str, str] | None = None) -> list[str]:
    """Why a clouds.yaml openstacksdk would read is unusable: file, line and column of a YAML
    error, never the text around it (it may be a password)."""
    import yaml

    problems = []
    for path in config_files(os.environ if env is None else env):
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            problems.append(f"{where}: not valid YAML ({exc.problem or 'syntax error'})")
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: not valid YAML ({type(exc).__name__})")
        except OSError as exc:
            problems.append(f"{path}: cannot be read ({exc.strerror})")
    return problems


def check_user_data(owner: str, user_data: str, secrets: Iterable[str]) -> str | None:
    """Why ``user_data`` (of ``owner``) must not be sent: it holds a cloud secret. Every
    process on the guest can read user-data from the metadata service."""
    if any(len(s) >= MIN_SECRET and s in user_data for s in secrets):
        return (
            f"{owner}: user_data contains a secret of the cloud credentials (a password or "
            "token of clouds.yaml / OS_*); every process on the guest can read user-data "
            "from the metadata service: remove it, nothing was sent"
        )
    return None
