"""Run a real Nova (fake compute driver), Placement and Glance on 127.0.0.1. Tests only.

Runs with the Python of the Nova venv (never multihome's), see cloud_support.py::

    python nova_server.py setup TEMPLATE_DIR               # template databases, once
    python nova_server.py clone TEMPLATE_DIR STATE PORTS   # a session's copy, configured
    python nova_server.py wsgi NAME STATE PORT             # placement | glance | nova-api
    python nova_server.py service NAME STATE               # conductor | scheduler | compute

``PORTS`` is JSON: ``{"rabbit": .., "placement": .., "glance": .., "nova": .., "neutron": ..}``.
There is no Keystone: Nova's and Placement's paste pipelines get, instead of ``authtoken``,
a filter that sets the identity a token would have given (``X-User-Id``, ``X-Project-Id``
= neutron's noauth project ``fake_project_id``, ``X-Roles`` admin); Glance runs its
unauthenticated pipeline. Nova talks to the test's real Neutron (``auth_type = none``).
The Nova processes share SQLite files: WAL, ``BEGIN IMMEDIATE`` and a busy timeout keep
them from failing with "database is locked". ``wsgi`` prints ``READY`` once the application
is loaded; ``service`` logs to stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = "fake_project_id"  # neutron's project in noauth mode; ports must belong to it
USER = "multihome-test"
COMPUTE_HOST = "mhtest-compute"

NOVA_CONF = """\
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:{rabbit}/
compute_driver = fake.FakeDriver
host = {host}
my_ip = 127.0.0.1
state_path = {state}
instances_path = {state}/instances
use_stderr = true
debug = false
periodic_fuzzy_delay = 0
heal_instance_info_cache_interval = 5
allow_resize_to_same_host = true
# the fake host has 8 vCPUs, 8000 MB and 500 GB: room for the servers of the whole suite
cpu_allocation_ratio = 64.0
ram_allocation_ratio = 64.0
disk_allocation_ratio = 64.0
# the API answers on its own port (wsgi runner); no eventlet servers
enabled_apis = osapi_compute

[wsgi]
api_paste_config = {state}/nova-api-paste.ini

[api]
auth_strategy = keystone
response_validation = ignore

[api_database]
connection = sqlite:///{state}/nova_api.sqlite

[database]
connection = sqlite:///{state}/nova_cell1.sqlite

[scheduler]
discover_hosts_in_cells_interval = 2

[filter_scheduler]
enabled_filters = ComputeFilter

[placement]
auth_type = none
endpoint_override = http://127.0.0.1:{placement}
region_name = RegionOne

[neutron]
auth_type = none
endpoint_override = http://127.0.0.1:{neutron}/
region_name = RegionOne
default_floating_pool = public

[glance]
auth_type = none
endpoint_override = http://127.0.0.1:{glance}
region_name = RegionOne
num_retries = 0

[cinder]
auth_type = none

[quota]
# no limits but the ones a test sets (the project is shared by the whole session)
cores = -1
ram = -1

[service_user]
send_service_user_token = false

[oslo_messaging_notifications]
driver = noop

[oslo_concurrency]
lock_path = {state}/lock

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false

[vnc]
enabled = false

[spice]
enabled = false

[serial_console]
enabled = false

[os_vif_ovs]
per_port_bridge = false

[upgrade_levels]
compute = auto
"""

NOVA_PASTE = """\
[composite:osapi_compute]
use = call:nova.api.openstack.urlmap:urlmap_factory
/: oscomputeversions
/v2.1: oscomputeversion_v2
/v2.1/+: openstack_compute_api_v21

[composite:openstack_compute_api_v21]
use = call:nova.api.auth:pipeline_factory_v21
keystone = compute_req_id faultwrap sizelimit keystonecontext osapi_compute_app_v21

[filter:compute_req_id]
paste.filter_factory = nova.api.compute_req_id:ComputeReqIdMiddleware.factory

[filter:faultwrap]
paste.filter_factory = nova.api.openstack:FaultWrapper.factory

[filter:sizelimit]
paste.filter_factory = oslo_middleware:RequestBodySizeLimiter.factory

[filter:keystonecontext]
paste.filter_factory = nova.api.auth:NovaKeystoneContext.factory

[app:osapi_compute_app_v21]
paste.app_factory = nova.api.openstack.compute:APIRouterV21.factory

[pipeline:oscomputeversions]
pipeline = faultwrap oscomputeversionapp

[pipeline:oscomputeversion_v2]
pipeline = compute_req_id faultwrap oscomputeversionapp_v2

[app:oscomputeversionapp]
paste.app_factory = nova.api.openstack.compute.versions:Versions.factory

[app:oscomputeversionapp_v2]
paste.app_factory = nova.api.openstack.compute.versions:VersionsV2.factory
"""


PLACEMENT_CONF = """\
[DEFAULT]
use_stderr = true
debug = false

[api]
auth_strategy = noauth2

[placement_database]
connection = sqlite:///{state}/placement.sqlite

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false
"""

GLANCE_CONF = """\
[DEFAULT]
use_stderr = true
debug = false
enabled_import_methods = []
worker_self_reference_url = http://127.0.0.1:{glance}
image_cache_dir = {state}/glance-cache

[database]
connection = sqlite:///{state}/glance.sqlite

[paste_deploy]
config_file = {venv}/etc/glance/glance-api-paste.ini

[glance_store]
stores = file
default_store = file
filesystem_store_datadir = {state}/images

[os_glance_staging_store]
filesystem_store_datadir = {state}/staging

[os_glance_tasks_store]
filesystem_store_datadir = {state}/tasks

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false

[oslo_concurrency]
lock_path = {state}/lock
"""

DEFAULT_PORTS = {"rabbit": 5672, "placement": 8778, "glance": 9292, "nova": 8774, "neutron": 9696}


def write_config(state: Path, ports: dict[str, int]) -> None:
    """The configuration files of every service, for these ports."""
    venv = Path(sys.prefix)
    for sub in ("lock", "instances", "images", "staging", "tasks", "glance-cache"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    values = dict(ports, state=state, venv=venv, host=COMPUTE_HOST)
    (state / "nova.conf").write_text(NOVA_CONF.format(**values))
    (state / "nova-api-paste.ini").write_text(NOVA_PASTE)
    (state / "placement").mkdir(exist_ok=True)
    (state / "placement" / "placement.conf").write_text(PLACEMENT_CONF.format(**values))
    (state / "glance").mkdir(exist_ok=True)
    (state / "glance" / "glance-api.conf").write_text(GLANCE_CONF.format(**values))
    (state / "ports.json").write_text(json.dumps(ports))


def _run(*args: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        list(args),
        check=False,
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")


def setup(template: Path) -> None:
    """Configuration and migrated databases of every service (the template of a session)."""
    bindir = Path(sys.prefix) / "bin"
    template.mkdir(parents=True, exist_ok=True)
    write_config(template, DEFAULT_PORTS)
    conf = ["--config-file", str(template / "nova.conf")]
    _run(str(bindir / "nova-manage"), *conf, "api_db", "sync")
    _run(
        str(bindir / "nova-manage"),
        *conf,
        "cell_v2",
        "map_cell0",
        "--database_connection",
        f"sqlite:///{template}/nova_cell0.sqlite",
    )
    _run(str(bindir / "nova-manage"), *conf, "db", "sync")
    _run(str(bindir / "nova-manage"), *conf, "cell_v2", "create_cell", "--name", "cell1")
    _run(
        str(bindir / "placement-manage"),
        "--config-file",
        str(template / "placement" / "placement.conf"),
        "db",
        "sync",
    )
    _run(
        str(bindir / "glance-manage"),
        "--config-dir",
        str(template / "glance"),
        "db_sync",
    )
    for db in template.glob("*.sqlite"):
        with sqlite3.connect(db) as con:
            con.execute("PRAGMA journal_mode=WAL")


def clone(template: Path, state: Path, ports: dict[str, int]) -> None:
    """A session's state directory: the template's databases, configured for ``ports``."""
    state.mkdir(parents=True, exist_ok=True)
    for db in template.glob("*.sqlite"):
        shutil.copy(db, state / db.name)
    write_config(state, ports)
    with sqlite3.connect(state / "nova_api.sqlite") as con:
        con.execute(
            "UPDATE cell_mappings SET transport_url = ?, database_connection = "
            "replace(database_connection, ?, ?)",
            (f"rabbit://guest:guest@127.0.0.1:{ports['rabbit']}/", str(template), str(state)),
        )
        con.execute(
            "UPDATE cell_mappings SET transport_url = 'none:///' WHERE name = 'cell0'",
        )


def _tune_sqlite() -> None:
    """WAL, BEGIN IMMEDIATE and a busy timeout for every SQLite engine of this process."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
            dbapi_connection.execute("PRAGMA busy_timeout = 60000")

    def on_begin(conn: Any) -> None:
        # runs before oslo.db's own listener, which then sees the marker and emits nothing
        if conn.engine.dialect.name == "sqlite" and "in_transaction" not in conn.info:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            conn.info["in_transaction"] = True

    def on_end(conn: Any) -> None:
        conn.info.pop("in_transaction", None)

    event.listen(Engine, "connect", on_connect)
    event.listen(Engine, "begin", on_begin)
    event.listen(Engine, "commit", on_end)
    event.listen(Engine, "rollback", on_end)


def _config_env(name: str, state: Path) -> None:
    if name == "nova-api":
        os.environ["OS_NOVA_CONFIG_DIR"] = str(state)
        os.environ["OS_NOVA_CONFIG_FILES"] = "nova-api-paste.ini;nova.conf"  # paste first
    elif name == "placement":
        os.environ["OS_PLACEMENT_CONFIG_DIR"] = str(state / "placement")
    elif name == "glance":
        os.environ["OS_GLANCE_CONFIG_DIR"] = str(state / "glance")
    else:
        raise SystemExit(f"unknown application {name}")


IDENTITY = {
    # what keystonemiddleware's authtoken would have put there after checking a token
    "nova-api": {
        "HTTP_X_USER_ID": USER,
        "HTTP_X_PROJECT_ID": PROJECT,
        "HTTP_X_ROLES": "admin,member,reader",
    },
    # placement's noauth2 takes the user from the token; keystoneauth's "none" plugin sends
    # the token "notused"; the roles header makes any user an admin
    "placement": {"HTTP_X_AUTH_TOKEN": "admin", "HTTP_X_ROLES": "admin,member,reader"},
    "glance": {},  # glance's own unauthenticated pipeline
}


def with_identity(app: Any, headers: dict[str, str]) -> Any:
    """Stand in for Keystone: the identity a token would carry, unless the request names one."""

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        for key, value in headers.items():
            environ.setdefault(key, value)
        return app(environ, start_response)

    return wrapped


def serve(name: str, state: Path, port: int) -> None:
    """Serve one WSGI application on 127.0.0.1:PORT (threads: one per request)."""
    import socketserver
    from wsgiref import simple_server

    _config_env(name, state)
    sys.argv = [sys.argv[0]]  # the applications parse the command line
    if name == "nova-api":
        from nova import monkey_patch

        monkey_patch.patch(backend="threading")
        _tune_sqlite()
        from nova.wsgi.osapi_compute import application
    elif name == "placement":
        from placement.wsgi.api import application
    else:
        from glance.wsgi.api import application

    class QuietHandler(simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
        daemon_threads = True

    app = with_identity(application, IDENTITY[name])
    if name in ("nova-api", "glance"):
        from neutron_server import Counter  # GET/DELETE /__mh_stats, like Neutron's

        app = Counter(app)
    httpd = simple_server.make_server(
        "127.0.0.1", port, app, server_class=Server, handler_class=QuietHandler
    )
    print("READY", flush=True)
    httpd.serve_forever()


def service(name: str, state: Path) -> None:
    """Run nova-conductor, nova-scheduler or nova-compute with the session's config."""
    import importlib

    import nova.cmd  # noqa: F401 - monkey patches (eventlet) before anything else

    if name not in ("conductor", "scheduler", "compute"):
        raise SystemExit(f"unknown service {name}")
    _tune_sqlite()
    sys.argv = [f"nova-{name}", "--config-file", str(state / "nova.conf")]
    importlib.import_module(f"nova.cmd.{name}").main()


def main() -> None:
    verb = sys.argv[1]
    if verb == "setup":
        setup(Path(sys.argv[2]).resolve())
    elif verb == "clone":
        clone(Path(sys.argv[2]).resolve(), Path(sys.argv[3]).resolve(), json.loads(sys.argv[4]))
    elif verb == "wsgi":
        serve(sys.argv[2], Path(sys.argv[3]).resolve(), int(sys.argv[4]))
    elif verb == "service":
        service(sys.argv[2], Path(sys.argv[3]).resolve())
    else:
        raise SystemExit(f"unknown verb {verb}")


if __name__ == "__main__":
    main()
