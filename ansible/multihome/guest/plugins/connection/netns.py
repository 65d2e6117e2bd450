# Copyright: multihome contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Connection plugin ``multihome.guest.netns``: run tasks inside a network namespace."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: netns
short_description: Run tasks inside a network namespace of the controller
version_added: "0.1.0"
description:
  - Runs every command of a task under C(ip netns exec NAMESPACE) on the controller, so that
    each inventory host is one network namespace (a lab guest, a test VM) and one playbook run
    manages several of them.
  - Files are the controller's own (a network namespace shares the file system), so copying
    is a local copy; C(ip netns exec) mounts C(/etc/netns/NAMESPACE/*) over C(/etc/*).
  - Needs root on the controller. Pass C(ansible_python_interpreter) explicitly.
author:
  - multihome contributors
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description:
      - The network namespace (a name under C(/run/netns), as C(ip netns list) shows it).
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_netns_name
  become_success_timeout:
    description:
      - Seconds to wait for become to succeed (as for the local connection).
    type: int
    default: 10
    vars:
      - name: ansible_local_become_success_timeout
  become_strip_preamble:
    description:
      - Strip become's output before the command's (as for the local connection).
    type: bool
    default: true
    vars:
      - name: ansible_local_become_strip_preamble
"""

import os
import shlex

import ansible.constants as C
from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as LocalConnection


class Connection(LocalConnection):
    """The local connection, with every command run inside a named network namespace."""

    transport = "multihome.guest.netns"
    has_pipelining = True

    @property
    def namespace(self) -> str:
        return str(self.get_option("remote_addr"))

    def _connect(self) -> LocalConnection:
        if not self._connected and not os.path.exists(os.path.join("/run/netns", self.namespace)):
            raise AnsibleConnectionFailure(
                f"network namespace {self.namespace!r} does not exist (ip netns list shows the "
                "names); set ansible_host or ansible_netns_name to one of them"
            )
        return super()._connect()

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        shell = C.DEFAULT_EXECUTABLE.split()[0] if C.DEFAULT_EXECUTABLE else "/bin/sh"
        ns, program, command = (shlex.quote(x) for x in (self.namespace, shell, cmd))
        inside = f"ip netns exec {ns} {program} -c {command}"
        return super().exec_command(inside, in_data=in_data, sudoable=sudoable)
