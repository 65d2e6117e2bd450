"""A batch of netlink requests against the real kernel, with failures where the answers of a
``send`` end: ``RtnlSocket.batch`` asks only the last request of each ``send`` for an
acknowledgement and relies on the kernel answering every failed request unasked. Here sends
are 4 requests (``BATCH_SIZE`` made small), and requests fail inside a send, as its last one
and as the last of the whole batch; the rules the kernel holds afterwards are read with
``ip -j rule``, not with multihome."""

from __future__ import annotations

import errno
import json
import os
import sys

import pytest
from netns_util import namespaces, sh, unique

SCRIPT = """
import json, socket
from multihome.backend import rtnl
from multihome.backend.netlink import NetlinkBackend
from multihome.model import Rule

rtnl.BATCH_SIZE = 4
FAILING = {3, 5, 9}  # the last of the first send, inside the second, the last of all
local = Rule(family=4, priority=0, table=255, proto=2)  # the kernel's own: EEXIST
rules = [local if i in FAILING else Rule(family=4, priority=3000 + i, table=100 + i, proto=222)
         for i in range(10)]
flags = rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
sock = rtnl.RtnlSocket()
added = sock.batch([(rtnl.RTM_NEWRULE, flags, NetlinkBackend.rule_message(r)) for r in rules])
gone = [r for r in rules if r is not local][:5]  # deleted twice: the second time ENOENT each
message = NetlinkBackend.rule_message
deleted = sock.batch([(rtnl.RTM_DELRULE, 0, message(r)) for r in gone + gone])
try:
    sock._sock.recv(65536, socket.MSG_DONTWAIT)
    left = True
except BlockingIOError:
    left = False
print(json.dumps({
    "added": [None if e is None else e.errno for e in added],
    "deleted": [None if e is None else e.errno for e in deleted],
    "left_unread": left,
}))
"""


def test_errors_inside_and_at_the_end_of_each_send_are_each_reported() -> None:
    """Each refused request of a batch, wherever it sits in its ``send``, gets its own error
    and every other one None; the kernel made exactly the others; when every request of a
    send fails each still gets its error; and nothing of the batch is left unread."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    ns = unique("mhbatch")
    with namespaces(ns):
        out = sh("ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT).stdout
        rules = json.loads(sh("ip", "-n", ns, "-j", "-4", "rule", "show").stdout)
    done = json.loads(out)
    failing = {3, 5, 9}
    assert done["added"] == [errno.EEXIST if i in failing else None for i in range(10)]
    assert done["deleted"] == [None] * 5 + [errno.ENOENT] * 5
    assert done["left_unread"] is False
    # made: the 7 not refused; the 5 deleted were there (their first delete was done)
    assert sorted(r["priority"] for r in rules) == [0, 3007, 3008, 32766, 32767], rules
