"""The stateful event fuzzer: random sequences of the events a cloud VM sees, driven into the
lab while `multihome agent` runs in the guest, the invariant checked with the kernel itself
after every quiescent point, the lab's probes at the end of every sequence.

Events: link flaps (single, and a rapid double one), DHCP renewals that restore all, some or
none of the lease's routes (also right after a flap), a new router, a lost lease, a re-added
address, hot-plug (DHCP or static from metadata) and detach of a port, an admin flushing a
port's table or deleting one of multihome's rules, the agent restarted (SIGTERM or SIGKILL,
a flap while it is down), and a foreign tool adding its own fwmark rule and routes.

Bounded for CI: a fixed seed (derandomize) and a few short sequences. ``make fuzz`` runs
many more; its size comes from the environment:

``MULTIHOME_FUZZ_EXAMPLES`` (sequences, default 3), ``MULTIHOME_FUZZ_STEPS`` (events per
sequence, default 6), ``MULTIHOME_FUZZ_SEED`` (an integer: a random run from that seed
instead of the fixed one), ``MULTIHOME_FUZZ_SHRINK`` (1: shrink a failure to a minimal
sequence; slow, each sequence builds its own lab).

A failure prints the steps as Python lines; keep each as a test in test_regressions.py.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from fuzz_lab import MAX_PORTS, MIN_PORTS, NETWORK_GATEWAY, OTHER_ROUTER, EventLab, skip_unless_able
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

EXAMPLES = int(os.environ.get("MULTIHOME_FUZZ_EXAMPLES", "3"))
STEPS = int(os.environ.get("MULTIHOME_FUZZ_STEPS", "6"))
SEED = os.environ.get("MULTIHOME_FUZZ_SEED")
SHRINK = os.environ.get("MULTIHOME_FUZZ_SHRINK", "0") == "1"

WHICH = st.integers(min_value=0, max_value=7)
"""Picks a port: index modulo the ports that qualify (shrinks towards the first)."""
ROUTE_SUBSETS = st.sampled_from([(), ("default",), ("metadata",), ("default", "metadata")])


class GuestEvents(RuleBasedStateMachine):
    """One sequence: a fresh lab (scenario 4, applied, agent running), random events."""

    def __init__(self) -> None:
        super().__init__()
        self.lab: EventLab | None = None
        self.failed = False

    @property
    def running(self) -> EventLab:
        if self.lab is None:
            self.lab = EventLab.start()
        return self.lab

    def pick(self, which: int, lab_client: bool = False) -> str:
        names = sorted(
            name for name, port in self.running.ports.items() if port.lab_client or not lab_client
        )
        return names[which % len(names)]

    def has_lab_client(self) -> bool:
        return any(p.lab_client for p in self.running.ports.values())

    # -- link -----------------------------------------------------------------------------
    @rule(which=WHICH, down_for=st.sampled_from([0.3, 0.05, 1.0]))
    def flap(self, which: int, down_for: float) -> None:
        self.running.flap(self.pick(which), down_for)

    @rule(which=WHICH)
    def double_flap(self, which: int) -> None:
        self.running.double_flap(self.pick(which))

    # -- DHCP -----------------------------------------------------------------------------
    @precondition(has_lab_client)
    @rule(which=WHICH)
    def renew(self, which: int) -> None:
        self.running.renew(self.pick(which, lab_client=True))

    @precondition(has_lab_client)
    @rule(which=WHICH, router=st.sampled_from([OTHER_ROUTER, NETWORK_GATEWAY]))
    def new_router(self, which: int, router: str) -> None:
        self.running.renew(self.pick(which, lab_client=True), router)

    @precondition(has_lab_client)
    @rule(which=WHICH, routes=ROUTE_SUBSETS)
    def dhcp_restore(self, which: int, routes: tuple[str, ...]) -> None:
        self.running.dhcp_restore(self.pick(which, lab_client=True), routes)

    @precondition(has_lab_client)
    @rule(which=WHICH, routes=ROUTE_SUBSETS)
    def flap_then_dhcp(self, which: int, routes: tuple[str, ...]) -> None:
        """A client that renews on carrier up, restoring some of the routes."""
        port = self.pick(which, lab_client=True)
        self.running.flap(port, 0.3)
        self.running.dhcp_restore(port, routes)

    @precondition(has_lab_client)
    @rule(which=WHICH)
    def expire(self, which: int) -> None:
        self.running.expire(self.pick(which, lab_client=True))

    @rule(which=WHICH)
    def readd_address(self, which: int) -> None:
        self.running.readd_address(self.pick(which))

    # -- ports ----------------------------------------------------------------------------
    @precondition(lambda self: len(self.running.ports) < MAX_PORTS)
    @rule(dhcp=st.booleans())
    def attach(self, dhcp: bool) -> None:
        self.running.attach(dhcp)

    @precondition(lambda self: len(self.running.ports) > MIN_PORTS)
    @rule(which=WHICH)
    def detach(self, which: int) -> None:
        self.running.detach(self.pick(which))

    # -- admins and other tools -----------------------------------------------------------
    @rule(which=WHICH)
    def flush_table(self, which: int) -> None:
        self.running.flush_table(self.pick(which))

    @rule(which=st.integers(min_value=0, max_value=31))
    def delete_rule(self, which: int) -> None:
        self.running.delete_rule(which)

    @rule(kill=st.booleans(), flap=st.sampled_from([None, 0, 1]))
    def restart_agent(self, kill: bool, flap: int | None) -> None:
        port = None if flap is None else self.pick(flap)
        self.running.restart_agent(kill, port)

    @precondition(lambda self: len(self.running.foreign_rules) < 2)
    @rule(priority=st.sampled_from([500, 9999, 10002, 20000]))
    def foreign(self, priority: int) -> None:
        self.running.foreign(priority, len(self.running.foreign_rules) + 1)

    # -- after every step -----------------------------------------------------------------
    @invariant()
    def kernel_routes_every_address_right(self) -> None:
        try:
            self.running.check()
        except BaseException:
            self.failed = True
            raise

    def teardown(self) -> None:
        if self.lab is None:
            return
        try:
            if not self.failed:
                self.lab.final_check()
                print("sequence passed:", "; ".join(self.lab.steps) or "(no event)")
        finally:
            self.lab.close()


def fuzz_settings() -> dict[str, Any]:
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else [])
    return {
        "max_examples": EXAMPLES,
        "stateful_step_count": STEPS,
        "deadline": None,
        "database": None,
        "derandomize": SEED is None,
        "phases": phases,
        "report_multiple_bugs": False,
        "print_blob": True,
        "suppress_health_check": list(HealthCheck),
    }


@pytest.mark.slow
def test_any_sequence_of_guest_events_keeps_every_address_on_its_own_port() -> None:
    """Random event sequences (fixed seed in CI) against the real kernel and the running
    agent: after every quiescent point, every managed address's traffic to an off-subnet
    destination, to its gateway and to the metadata host leaves its own port (via its own
    gateway off-subnet), by source address and by outgoing device; traffic bound to no
    address has a route and leaves with its port's own address; no rule is duplicated;
    no table holds a second default or another port's routes; nothing of a detached port
    is left; the foreign rules and routes are untouched. At the end of each sequence every
    floating IP answers and every address egresses as its own floating IP."""
    skip_unless_able()
    machine: type[GuestEvents] = GuestEvents
    if SEED is not None:
        machine = seed(int(SEED))(type("SeededGuestEvents", (GuestEvents,), {}))
    run_state_machine_as_test(machine, settings=settings(**fuzz_settings()))
