"""Runs inside a test namespace: for each request line (JSON: a list of flows) it reads the
namespace, asks ``explain`` and the kernel (RTM_GETROUTE) about every flow, and answers one
JSON line with both answers and the decoded rules; a line ``{"lookups": [...]}`` asks the
backend's ``lookups`` in both its forms instead (see :func:`_lookups`)."""

from __future__ import annotations

import ipaddress
import json
import sys
from typing import Any
from unittest import mock

from multihome.backend import netlink
from multihome.backend.netlink import NetlinkBackend
from multihome.explain import Flow, explain
from multihome.explain_cli import ask_kernel, read_route_sysctls


def _flow(data: dict[str, Any]) -> Flow:
    return Flow(
        dst=ipaddress.ip_address(data["dst"]),
        src=None if data["src"] is None else ipaddress.ip_address(data["src"]),
        iif=data["iif"],
        oif=data["oif"],
        mark=data["mark"],
        ipproto=data["ipproto"],
        sport=data["sport"],
        dport=data["dport"],
        uid=data["uid"],
    )


def _answers(backend: NetlinkBackend, flows: list[dict[str, Any]]) -> dict[str, Any]:
    state = backend.read()
    sysctls = read_route_sysctls([link.name for link in state.links])
    results = []
    family = ipaddress.ip_address(flows[0]["dst"]).version if flows else 4
    for data in flows:
        flow = _flow(data)
        mine = explain(state, flow, sysctls)
        kernel = ask_kernel(backend, flow)
        results.append(
            {
                "explain": {
                    "error": mine.error,
                    "dev": mine.ifname,
                    "gateway": None if mine.gateway is None else str(mine.gateway),
                    "src": None if mine.src is None else str(mine.src),
                },
                "kernel": {
                    "error": kernel.error,
                    "dev": kernel.ifname,
                    "gateway": None if kernel.gateway is None else str(kernel.gateway),
                    # a given source is the packet's (IPv6 names its own choice beside it)
                    "src": str(flow.src or kernel.prefsrc)
                    if kernel.error is None and (flow.src or kernel.prefsrc)
                    else None,
                },
                # a multipath route the flow does not decide: the kernel's one of these
                "choices": [
                    {k: c[k] for k in ("dev", "gateway", "src")} for c in mine.to_json()["choices"]
                ],
                "steps": [
                    step.rule.describe() + " -> " + step.outcome
                    for step in mine.steps
                    if step.matched
                ],
            }
        )
    rules = [rule.to_json() for rule in state.rules if rule.family == family]
    return {"results": results, "rules": rules}


def _lookups(
    backend: NetlinkBackend,
    queries: list[list[str | None]],
    batch: int | None,
    pause: int | None,
    old_kernel: bool,
) -> dict[str, Any]:
    """Each ``[dst, src, oif]`` asked by ``lookups`` plainly and with ``sources=False``:
    per form, each answer's device, gateway, table and type (None: no route). With
    ``batch``, the second form is asked as the agent's verification asks,
    ``lookups_unless`` in batches of that many; with ``pause`` too, before that batch (1:
    the second) this prints ``paused`` and waits for a line (the test changes the
    namespace meanwhile). ``old_kernel``: the second form as on a kernel before 5.3, which
    cannot list its route exceptions apart. ``listings``: how many times the second form
    listed the kernel's route exceptions; ``asked``: how many lookup requests it sent."""
    asked = [
        (
            ipaddress.ip_address(dst),
            None if src is None else ipaddress.ip_address(src),
            oif,
        )
        for dst, src, oif in queries
    ]
    batches = 0

    def interrupted() -> bool:
        nonlocal batches
        if batches == pause:
            print("paused", flush=True)
            sys.stdin.readline()
        batches += 1
        return False

    plain = backend.lookups(asked)
    listed = (lambda: None) if old_kernel else backend._exceptions6
    with (
        mock.patch.object(backend, "_exceptions6", wraps=listed) as listing,
        mock.patch.object(backend.sock, "gets", wraps=backend.sock.gets) as gets,
        mock.patch.object(netlink, "_exceptions_listed", lambda: not old_kernel),
    ):
        if batch is None:
            fib = backend.lookups(asked, sources=False)
        else:
            given = backend.lookups_unless(asked, interrupted, batch, sources=False)
            assert given is not None
            fib = given
    return {
        form: [
            None
            if found is None
            else [
                found.ifname,
                None if found.gateway is None else str(found.gateway),
                found.table,
                found.type,
            ]
            for found in answers
        ]
        for form, answers in (("plain", plain), ("fib", fib))
    } | {
        "listings": listing.call_count,
        "asked": sum(len(call.args[1]) for call in gets.call_args_list),
    }


def main() -> None:
    """A line with a list asks about flows (:func:`_answers`); with ``{"lookups": [...]}``,
    about lookups (:func:`_lookups`)."""
    backend = NetlinkBackend()
    for line in sys.stdin:
        request = json.loads(line)
        if isinstance(request, dict):
            answer = _lookups(
                backend,
                request["lookups"],
                request.get("batch"),
                request.get("pause"),
                request.get("old_kernel", False),
            )
            print(json.dumps(answer), flush=True)
        else:
            print(json.dumps(_answers(backend, request)), flush=True)


if __name__ == "__main__":
    main()
