"""The agent's event source in a real namespace: the notifications of the agent's own changes
(they carry the port id of the socket it changes the kernel through) are not events, another
process's changes are. Checked against the kernel with `ip -j`."""

from __future__ import annotations

import json
import sys

from agent_util import Lab, sh

#: Runs inside the guest: one route added through the backend's own socket, one by `ip`,
#: then the events that arrive within a second, as text.
INSIDE = """
import ipaddress, json, subprocess
from multihome.agent.events import EventSource
from multihome.backend.netlink import NetlinkBackend
from multihome.model import Route
from multihome.plan import Change

backend = NetlinkBackend()
source = EventSource(own=backend.sock.portid)
source.start()
own = Route(table=5555, dst=ipaddress.ip_network("10.9.9.0/24"), ifname="eth0", proto=222,
            scope=253)
backend.apply([Change("add", own)])
subprocess.run(["ip", "route", "add", "10.9.8.0/24", "dev", "eth0", "table", "5556"],
               check=True)
first = source.wait(5.0)
events = [] if first is None else source.burst(first, 1.0, 3.0)
print(json.dumps([event.describe() for event in events]))
backend.close()
"""


def test_notifications_of_the_agents_own_changes_are_not_events(lab: Lab) -> None:
    """A route the backend adds makes no event; the route `ip` adds right after makes one;
    both are in the kernel (so the first change was made, and its notification dropped)."""
    out = sh("ip", "netns", "exec", lab.guest, sys.executable, "-c", INSIDE).stdout
    events = json.loads(out)
    assert any("10.9.8.0/24 table 5556" in event for event in events), events
    assert not any("table 5555" in event for event in events), events
    for table, dst in (("5555", "10.9.9.0/24"), ("5556", "10.9.8.0/24")):
        assert [r["dst"] for r in lab.json("route", "show", "table", table)] == [dst]
