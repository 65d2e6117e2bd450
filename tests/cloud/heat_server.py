"""Run a real Heat (heat-api, heat-engine) on 127.0.0.1 against the test Nova. Tests only.

Runs with the Python of the Heat venv (never multihome's), see cloud_support.py::

    python heat_server.py setup TEMPLATE_DIR                   # migrated database, once
    python heat_server.py clone TEMPLATE_DIR STATE SETTINGS    # a session's copy, configured
    python heat_server.py api STATE PORT                       # heat-api (prints READY)
    python heat_server.py engine STATE                         # heat-engine (one worker)
    python heat_server.py validate TEMPLATE.yaml...            # Heat's own parser, offline
    python heat_server.py stack create|update|delete URL NAME [TEMPLATE.yaml]
                                       # python-heatclient, as `openstack stack ... --wait`

``SETTINGS`` is JSON: ``{"rabbit": PORT, "heat": PORT, "network": URL, "compute": URL,
"image": URL}`` (the running Neutron, Nova and Glance, and the RabbitMQ node Nova uses).

There is no Keystone, as for Neutron and Nova: heat-api runs Heat's own ``noauth`` paste
pipeline, whose middleware hands every request the identity and the token body of
``[noauth] token_response`` (a Keystone v3 token whose catalogue lists the test's Neutron,
Nova and Glance: heat-engine's clients find their endpoints there, as they would in a
token Keystone issued). ``deferred_auth_method = password`` keeps Heat from asking Keystone
for a trust when it stores a stack; and no stack-user domain is configured, since
multihome's templates need no stack users (RAW user-data, no signals, no software
deployments). Heat's message bus is the RabbitMQ node of the session's Nova.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = "fake_project_id"  # neutron's project in noauth mode, as in nova_server.py
USER = "multihome-test"

HEAT_CONF = """\
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:{rabbit}/
host = mhtest-heat
use_stderr = true
debug = false
deferred_auth_method = password
auth_encryption_key = multihome-test-0123456789abcdefg
num_engine_workers = 1
region_name_for_services = RegionOne
heat_metadata_server_url = http://127.0.0.1:{heat}
heat_waitcondition_server_url = http://127.0.0.1:{heat}/v1/waitcondition
max_stacks_per_tenant = -1
client_retry_limit = 0

[database]
connection = sqlite:///{state}/heat.sqlite

[paste_deploy]
flavor = noauth
api_paste_config = {venv}/etc/heat/api-paste.ini

[noauth]
token_response = {state}/token.json

[clients]
endpoint_type = publicURL

[oslo_messaging_notifications]
driver = noop

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false

[oslo_concurrency]
lock_path = {state}/lock
"""


def _endpoint(kind: str, url: str) -> dict[str, Any]:
    return {
        "type": kind,
        "name": kind,
        "id": f"mhtest-{kind}",
        "endpoints": [
            {
                "id": f"mhtest-{kind}-{interface}",
                "interface": interface,
                "region": "RegionOne",
                "region_id": "RegionOne",
                "url": url,
            }
            for interface in ("public", "internal", "admin")
        ],
    }


def token(settings: dict[str, Any]) -> dict[str, Any]:
    """The Keystone v3 token body that the noauth middleware hands to every request."""
    domain = {"id": "default", "name": "Default"}
    return {
        "token": {
            "methods": ["password"],
            "issued_at": "2026-01-01T00:00:00.000000Z",
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "user": {"id": USER, "name": USER, "domain": domain},
            "project": {"id": PROJECT, "name": PROJECT, "domain": domain},
            "roles": [{"id": "admin", "name": "admin"}, {"id": "member", "name": "member"}],
            "catalog": [
                _endpoint("network", settings["network"]),
                _endpoint("compute", settings["compute"]),
                _endpoint("image", settings["image"]),
                _endpoint("orchestration", f"http://127.0.0.1:{settings['heat']}/v1/{PROJECT}"),
            ],
        }
    }


DEFAULTS = {
    "rabbit": 5672,
    "heat": 8004,
    "network": "http://127.0.0.1:9696",
    "compute": "http://127.0.0.1:8774/v2.1",
    "image": "http://127.0.0.1:9292",
}


def write_config(state: Path, settings: dict[str, Any]) -> None:
    (state / "lock").mkdir(parents=True, exist_ok=True)
    values = dict(settings, state=state, venv=Path(sys.prefix))
    (state / "heat.conf").write_text(HEAT_CONF.format(**values))
    (state / "token.json").write_text(json.dumps(token(settings), indent=1))


def setup(template: Path) -> None:
    """The migrated database (the template of a session)."""
    template.mkdir(parents=True, exist_ok=True)
    write_config(template, DEFAULTS)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from heat.cmd.manage import main; sys.argv[0] = 'heat-manage'; main()",
            "--config-file",
            str(template / "heat.conf"),
            "db_sync",
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"heat-manage db_sync failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    with sqlite3.connect(template / "heat.sqlite") as con:
        con.execute("PRAGMA journal_mode=WAL")


def clone(template: Path, state: Path, settings: dict[str, Any]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    shutil.copy(template / "heat.sqlite", state / "heat.sqlite")
    write_config(state, settings)


def _tune_sqlite() -> None:
    """heat-api and heat-engine's threads share one SQLite file: WAL, ``BEGIN IMMEDIATE``
    and a busy timeout, as for Nova (nova_server.py, next to this file)."""
    from nova_server import _tune_sqlite as tune

    tune()


def api(state: Path, port: int) -> None:
    """Serve heat-api on 127.0.0.1:PORT (threads: one per request)."""
    import socketserver
    from wsgiref import simple_server

    sys.argv = ["heat-api", "--config-file", str(state / "heat.conf")]
    _tune_sqlite()
    from heat.api.openstack import wsgi

    application = wsgi.init_application()

    class QuietHandler(simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
        daemon_threads = True

    httpd = simple_server.make_server(
        "127.0.0.1", port, application, server_class=Server, handler_class=QuietHandler
    )
    print("READY", flush=True)
    httpd.serve_forever()


def engine(state: Path) -> None:
    sys.argv = ["heat-engine", "--config-file", str(state / "heat.conf")]
    _tune_sqlite()
    from heat.cmd.engine import main as engine_main

    engine_main()


def validate(paths: list[Path]) -> None:
    """Parse each template with Heat's template parser and check every resource's properties
    against its type's schema (unknown or missing properties, section errors), without a
    cloud: values that need one (get_resource, custom constraints) are left to a real stack.
    Prints one JSON line per template: its resource names with their types."""
    import logging

    logging.disable(logging.WARNING)  # the plugin registry's chatter
    from heat.common import template_format
    from heat.engine import properties, resources
    from heat.engine import template as heat_template

    resources.initialise()
    env = resources.global_env()
    for path in paths:
        tmpl = heat_template.Template(template_format.parse(path.read_text()))
        tmpl.validate()
        checked = {}
        for name, defn in tmpl.resource_definitions(None).items():
            cls = env.get_class(defn.resource_type)
            props = properties.Properties(cls.properties_schema, defn._properties or {})
            props.validate(with_value=False)
            checked[name] = defn.resource_type
        print(json.dumps({"template": str(path), "resources": checked}), flush=True)


def stack(action: str, url: str, name: str, template: Path | None) -> None:
    """Create, update (from the template file) or delete stack ``name`` with
    python-heatclient, the way `openstack stack create -t FILE --wait NAME` does (the client
    reads and parses the file itself); wait until the action completes. Prints the stack's
    id and status as JSON; exits non-zero with Heat's reason when the action fails."""
    import time

    from heatclient import client as heat_client
    from heatclient import exc as heat_exc
    from heatclient.common import template_utils

    heat = heat_client.Client("1", endpoint=url, token="multihome-test")
    if action in ("create", "update"):
        assert template is not None
        files, body = template_utils.get_template_contents(template_file=str(template))
        fields = {"template": body, "files": files, "parameters": {}}
        if action == "create":
            heat.stacks.create(stack_name=name, **fields)
        else:
            heat.stacks.update(name, **fields)
    elif action == "delete":
        found = heat.stacks.get(name)
        heat.stacks.delete(found.id)
        name = f"{name}/{found.id}"  # a deleted stack is found by id only
    else:
        raise SystemExit(f"unknown stack action {action}")
    deadline = time.monotonic() + 600
    while True:
        try:
            current = heat.stacks.get(name)
        except heat_exc.HTTPNotFound:
            print(json.dumps({"id": None, "status": "DELETE_COMPLETE"}))
            return
        status = current.stack_status
        if status == f"{action.upper()}_COMPLETE":
            print(json.dumps({"id": current.id, "status": status}))
            return
        if status.endswith("_FAILED") or time.monotonic() > deadline:
            raise SystemExit(f"stack {name}: {status}: {current.stack_status_reason}")
        time.sleep(0.5)


def main() -> None:
    verb = sys.argv[1]
    if verb == "setup":
        setup(Path(sys.argv[2]).resolve())
    elif verb == "clone":
        clone(Path(sys.argv[2]).resolve(), Path(sys.argv[3]).resolve(), json.loads(sys.argv[4]))
    elif verb == "api":
        api(Path(sys.argv[2]).resolve(), int(sys.argv[3]))
    elif verb == "engine":
        engine(Path(sys.argv[2]).resolve())
    elif verb == "stack":
        template = Path(sys.argv[5]) if len(sys.argv) > 5 else None
        stack(sys.argv[2], sys.argv[3], sys.argv[4], template)
    elif verb == "validate":
        validate([Path(arg) for arg in sys.argv[2:]])
    else:
        raise SystemExit(f"unknown verb {verb}")


if __name__ == "__main__":
    main()
