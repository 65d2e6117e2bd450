"""Run a real Neutron API on 127.0.0.1 (noauth, ML2, SQLite). Test infrastructure only.

Runs with the Python of the Neutron venv (never multihome's), see cloud_support.py::

    python neutron_server.py setup STATE_DIR          # config + template database, once
    python neutron_server.py serve STATE_DIR PORT     # serve until killed

``serve`` wraps the WSGI application in a counter of API requests, readable at
``GET /__mh_stats`` and cleared by ``DELETE /__mh_stats`` (the benchmark and tests use it),
and prints ``READY`` on stdout once the application is loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

NEUTRON_CONF = """\
[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = noauth
transport_url = fake:/
api_paste_config = {paste}
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
allow_overlapping_ips = true
debug = false
use_stderr = true
state_path = {state}
lock_path = {state}/lock
api_workers = 0
rpc_workers = 0
rpc_state_report_workers = 0

[database]
connection = sqlite:///{state}/neutron.sqlite
sqlite_synchronous = false

[quotas]
default_quota = -1
quota_network = -1
quota_subnet = -1
quota_port = -1
quota_router = -1
quota_floatingip = -1
quota_security_group = -1
quota_security_group_rule = -1

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false

[oslo_concurrency]
lock_path = {state}/lock

[agent]
report_interval = 0
"""

ML2_CONF = """\
[ml2]
type_drivers = flat,vlan,vxlan,local
tenant_network_types = vxlan
mechanism_drivers = multihome_test
extension_drivers = port_security

[ml2_type_flat]
flat_networks = *

[ml2_type_vxlan]
vni_ranges = 1:1000

[securitygroup]
enable_security_group = true
firewall_driver = noop
"""

MECH_DRIVER = '''\
"""An ML2 mechanism driver that binds every port (multihome tests only)."""
from neutron_lib.api.definitions import portbindings
from neutron_lib import constants
from neutron_lib.plugins.ml2 import api


class BindEverything(api.MechanismDriver):
    """Binds each port to its first segment as an OVS port, like a healthy agent would."""

    def initialize(self):
        pass

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                                {portbindings.CAP_PORT_FILTER: True},
                                status=constants.PORT_STATUS_ACTIVE)
            return
'''

DIST_INFO_METADATA = "Metadata-Version: 2.1\nName: multihome-test-mech\nVersion: 0.0.0\n"
DIST_INFO_ENTRY_POINTS = (
    "[neutron.ml2.mechanism_drivers]\nmultihome_test = multihome_test_mech:BindEverything\n"
)


def _site_packages() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


def setup(state: Path) -> None:
    """Write the configuration, install the mechanism driver, build the template database."""
    venv = Path(sys.prefix)
    state.mkdir(parents=True, exist_ok=True)
    (state / "lock").mkdir(exist_ok=True)
    site = _site_packages()
    (site / "multihome_test_mech.py").write_text(MECH_DRIVER)
    dist = site / "multihome_test_mech-0.0.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(DIST_INFO_METADATA)
    (dist / "entry_points.txt").write_text(DIST_INFO_ENTRY_POINTS)
    write_config(state, venv)
    db = state / "neutron.sqlite"
    if db.exists():
        db.unlink()
    code = (
        "import sqlalchemy, neutron.db.migration.models.head\n"
        "from neutron_lib.db import model_base\n"
        f"e = sqlalchemy.create_engine('sqlite:///{db}')\n"
        "model_base.BASEV2.metadata.create_all(e)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "neutron-db-manage"),
            "--config-file",
            str(state / "neutron.conf"),
            "--config-file",
            str(state / "plugins/ml2/ml2_conf.ini"),
            "stamp",
            "heads",
        ],
        check=True,
        capture_output=True,
    )


def write_config(state: Path, venv: Path) -> None:
    (state / "plugins/ml2").mkdir(parents=True, exist_ok=True)
    (state / "lock").mkdir(exist_ok=True)
    paste = venv / "etc/neutron/api-paste.ini"
    (state / "neutron.conf").write_text(NEUTRON_CONF.format(paste=paste, state=state))
    (state / "plugins/ml2/ml2_conf.ini").write_text(ML2_CONF)


def clone(template: Path, state: Path) -> None:
    """A fresh server directory from the template: config rewritten, database copied."""
    state.mkdir(parents=True, exist_ok=True)
    write_config(state, Path(sys.prefix))
    shutil.copy(template / "neutron.sqlite", state / "neutron.sqlite")


class Counter:
    """WSGI middleware counting API requests per method and path prefix."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.agents: list[str] = []  # the User-Agent of each request (who asked)
        self.durations: list[float] = []  # seconds spent on each request
        self.seconds = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/__mh_stats":
            if method == "DELETE":
                with self.lock:
                    self.requests.clear()
                    self.agents.clear()
                    self.durations.clear()
                    self.seconds = 0.0
            with self.lock:
                body = json.dumps(
                    {
                        "count": len(self.requests),
                        "seconds": self.seconds,
                        "requests": list(self.requests),
                        "agents": list(self.agents),
                        "durations": list(self.durations),
                    }
                ).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        query = environ.get("QUERY_STRING", "")
        started = time.monotonic()
        try:
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.requests.append(f"{method} {path}" + (f"?{query}" if query else ""))
                self.agents.append(environ.get("HTTP_USER_AGENT", ""))
                self.durations.append(time.monotonic() - started)
                self.seconds += self.durations[-1]


def serve(state: Path, port: int) -> None:
    from wsgiref import simple_server

    os.environ["OS_NEUTRON_CONFIG_DIR"] = str(state)
    os.environ["OS_NEUTRON_CONFIG_FILES"] = "neutron.conf;plugins/ml2/ml2_conf.ini"
    sys.argv = [sys.argv[0]]  # neutron parses the command line
    from neutron.wsgi.api import application

    class QuietHandler(simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = simple_server.make_server(
        "127.0.0.1", port, Counter(application), handler_class=QuietHandler
    )
    print("READY", flush=True)
    httpd.serve_forever()


def main() -> None:
    verb, state = sys.argv[1], Path(sys.argv[2]).resolve()
    if verb == "setup":
        setup(state)
    elif verb == "clone":
        clone(Path(sys.argv[3]).resolve(), state)
    elif verb == "serve":
        serve(state, int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown verb {verb}")


if __name__ == "__main__":
    main()
