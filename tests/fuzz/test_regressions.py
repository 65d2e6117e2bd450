"""Every failure the event fuzzer found, kept as a plain test replaying its exact sequence.

Each test starts from the fuzzer's lab (scenario 4 fixed by `multihome apply`, the agent
running, settled: the ``lab`` fixture), replays the steps the fuzzer printed, and checks the
same invariant with the kernel itself (``lab.check()``) and, at the end, the lab's probes
(``lab.final_check()``). The docstring says what broke. A test marked ``xfail(strict=True)``
is a finding not fixed on this branch yet: it starts passing (and so failing as XPASS) when
the fix lands; then remove the mark.
"""

from __future__ import annotations

from fuzz_lab import EventLab

NOT_FIXED_HERE = "fixed on another branch (see the reason); remove the mark once merged"


def test_flap_then_dhcp_restores_only_the_default(lab: EventLab) -> None:
    """Issue 13's opening, found again by the fuzzer (``flap_then_dhcp``): eth1 flaps, the
    agent restores its table; then a DHCP client puts back only eth1's default in main. The
    agent's second repair took eth1's metadata host route out of its table and the rule
    ``from 192.168.0.112 to 169.254.169.254``, because main no longer had them: afterwards
    ``ip route get 169.254.169.254 from 192.168.0.112`` leaves eth0 (port security drops
    it). Expected: the table keeps what the port's lease gives it. Fixed on branch facts
    (a port's table from its own facts)."""
    lab.flap("eth1", down_for=0.3)
    lab.check()
    lab.dhcp_restore("eth1", ("default",))
    lab.final_check()


def test_static_port_metadata_leaves_its_own_port(lab: EventLab) -> None:
    """Found by the fuzzer's first sequence (``attach(dhcp=False)``): a hot-plugged port on
    which DHCP is off gets its address, gateway and table from the metadata service, with
    no 169.254.169.254 host route (network_data.json has none). Then ``ip route get
    169.254.169.254 from 192.168.0.10`` leaves **eth0** via 192.168.0.100 with eth2's source
    address (port security drops it): the rule ``lookup main suppress_prefixlength 0`` at
    band+1 lets eth0's metadata host route in main win for every source. Expected: eth2's
    address reaches 169.254.169.254 through eth2 (its own table's default, via its
    gateway, where Neutron's router serves metadata). The same holds for any specific route
    in main of one port (a classless static route of eth0) and the addresses of the
    others. Fixed (policy.py, ``_peer_specifics``): each port gets a band+0 rule for every
    specific destination main routes through another port, and its table a copy through
    itself when that route's gateway is on its own subnet (here 169.254.169.254 via
    192.168.0.100 dev eth2)."""
    port = lab.attach(dhcp=False)
    lab.check()
    address = lab.ports[port].ip
    got = lab.route_get("169.254.169.254", "from", address)
    assert isinstance(got, dict) and got.get("dev") == port, got


def test_detaching_the_primary_port_leaves_the_other_its_default(lab: EventLab) -> None:
    """Found by the fuzzer (seed 1: readd_address, flaps, ``detach('eth0')``; minimal:
    ``detach('eth0')`` alone). With eth0, the primary, gone, eth1 is the only port, so the
    policy wants no table and no rule any more; but eth1's default had been taken out of
    main (the how-to's fix) and nobody puts it back: ``ip route get 198.51.100.10 from
    192.168.0.112`` answers "Network is unreachable". Meanwhile the agent fights itself:
    every repair restores eth1's table from memory (``_restore_tables``) and removes it
    again in the same plan, 50 repairs in 4.7 s, until its fight guard pauses it. Expected:
    eth1 keeps a default (back in main, or its table and rules kept) and the agent repairs
    once. The fight is gone with branch facts (the agent no longer restores tables itself);
    the default is fixed here: the policy puts the primary's default back in main from the
    port's facts, as multihome's (policy.py, compute_policy)."""
    lab.detach("eth0")
    lab.final_check()
    repairs = lab.live.agent_log().count("repair after")
    assert repairs < 5, f"{repairs} repairs for one detach"


def test_single_port_left_readds_its_address(lab: EventLab) -> None:
    """Found by the fuzzer's fixed seed (``delete_rule``, ``detach('eth1')``, ``renew``,
    ``delete_rule`` x2, ``readd_address('eth0')``; minimal: the two below). eth0 is the only
    port left; its address is removed and added again, which takes its default out of main
    (the kernel drops routes whose source is gone). The agent, on main's code, restores
    eth0's table from memory and its plan removes it in the same repair, 50 times in 2.2 s,
    until its fight guard pauses it; eth0 never gets a default back: ``ip route get
    198.51.100.10 from 192.168.0.107`` is "Network is unreachable". Expected: one repair,
    and the port's default (its lease's) back where the single port needs it, in main.
    Fixed with the test above."""
    lab.detach("eth1")
    lab.check()
    lab.readd_address("eth0")
    lab.final_check()


def test_primary_flaps_while_the_agent_is_down(lab: EventLab) -> None:
    """Found by the fuzzer's fixed seed (``restart_agent(kill=True, flap_while_down='eth0')``).
    The agent is killed; eth0, the primary, flaps while no agent runs (the kernel flushes
    eth0's default and metadata routes from main and eth0's table); the agent starts
    again. It has no memory of eth0's gateway and main has no default any more, so it takes
    eth0 for an isolated port and deletes eth0's five rules. Afterwards nothing gives eth0
    a default (``ip route get 198.51.100.10 from 192.168.0.107``: "Network is
    unreachable") and eth0's metadata traffic leaves eth1. Expected: the gateway comes from
    the port's own facts (its DHCP lease, or the metadata's network_data.json, which the
    agent has read), and eth0 keeps its table and rules. Fixed on branch facts (the lease is
    one of the port's facts)."""
    lab.restart_agent(kill=True, flap_while_down="eth0")
    lab.final_check()


def test_no_default_left_after_restarts_with_flaps(lab: EventLab) -> None:
    """Found by the fuzzer (seed 3, eight steps; minimal: the three below), once the policy
    put the primary's default back in main. eth0's lease expires and the agent's own DHCP
    client addresses it (``noprefixroute``: its subnet route in main is the client's, metric
    1002). The agent restarts while eth0 flaps, then is killed while eth1 flaps: main holds
    no route of eth0 at all and no default; eth0's table, rebuilt from its lease, has
    lost its metric (0). eth0 became the primary on that metric 0, its default could not go
    back to main (no route there to its gateway), and eth1, the secondary, had none in main
    either: ``ip route get 198.51.100.10`` said "Network is unreachable" (and the agent's
    metadata reads failed the same way). Expected, and fixed here (policy.py,
    ``_choose_primary``): with no default left in main, a port whose default main can take
    again comes first, so eth1 is the primary and its default is back in main. (The lost
    metric is the facts branch's: a lease read after a restart knows no metric.)"""
    lab.expire("eth0")
    lab.check()
    lab.restart_agent(kill=False, flap_while_down="eth0")
    lab.check()
    lab.restart_agent(kill=True, flap_while_down="eth1")
    lab.final_check()


def test_agent_restart_resumes_its_own_dhcp_client(lab: EventLab) -> None:
    """Found by the fuzzer (seed 3, six steps; minimal: the three below). eth1's lease
    expires, so the agent runs its own DHCP client for it (addresses ``noprefixroute``, the
    client's hook adds the subnet and lease routes to main); eth0 is detached, so eth1 is
    the only port. The agent restarts (SIGTERM stops its DHCP client) while eth1 flaps: the
    flap flushes all of eth1's routes, the address stays, and the new agent, seeing an
    address, ran no client for it: eth1 kept an address and no route at all (``ip route
    get 198.51.100.10 from 192.168.0.112``: "Network is unreachable"), for good. Expected,
    and fixed here (agent/service.py, ``_resume_dhcp``): a port with the agent's own lease
    file and no DHCP client gets its client again, which renews the lease and puts the
    routes back."""
    lab.expire("eth1")
    lab.check()
    lab.detach("eth0")
    lab.check()
    lab.restart_agent(kill=False, flap_while_down="eth1")
    lab.final_check()
    assert "dhcp client for eth1 again" in lab.live.agent_log()


def test_an_address_freed_by_a_detach_goes_to_the_next_port(lab: EventLab) -> None:
    """Found by the fuzzer (seed 7, four steps: the ones below). A DHCP port is attached
    (eth2, 192.168.0.10, the pool's first address) and detached, eth0 is detached, and a
    new DHCP port is attached: it is given 192.168.0.10 again, but dnsmasq refused it ("not
    using configured address 192.168.0.10 because it is leased to" the detached port's MAC)
    and the new port never got an address. A lab bug, not multihome's: Neutron releases a
    deleted port's lease. Fixed here (lab/runtime.py, ``reload_dhcp`` keeps only the leases
    of the ports still there)."""
    lab.attach(dhcp=True)
    lab.check()
    lab.detach("eth2")
    lab.check()
    lab.detach("eth0")
    lab.check()
    lab.attach(dhcp=True)
    lab.final_check()


def test_static_port_attached_after_the_sole_port_flapped_gets_its_address(
    lab: EventLab,
) -> None:
    """Found by the fuzzer (seed 4242, three steps: the ones below). eth0 is detached,
    so eth1 is the only port (no tables); a double flap of eth1 flushes its routes, and the
    agent puts back only its default in main (from its facts): the 169.254.169.254 host route
    from eth1's lease stays gone until dhclient renews. A static (DHCP-off) port is then
    attached; the agent's metadata read goes through the default to the lab's router, which
    does not serve metadata (Neutron's router does, by its metadata proxy), so the agent
    finds no metadata ("not an OpenStack guest"), starts a DHCP client that no one answers,
    and the port never gets its address. (Worse: with no host route to 169.254.169.254 left,
    `--source auto` took the guest for one that is not OpenStack's and did not even ask.)
    Fixed here, on both sides: the agent that once read OpenStack metadata keeps asking the
    service (agent/service.py, ``_load_metadata``), and the lab's router serves metadata as
    Neutron's does (lab/runtime.py: a route to the DHCP port's 169.254.169.254)."""
    lab.detach("eth0")
    lab.check()
    lab.double_flap("eth1")
    lab.check()
    lab.attach(dhcp=False)
    lab.final_check()


def test_sole_port_on_the_agents_dhcp_client_survives_a_flap(lab: EventLab) -> None:
    """Found by the fuzzer (seed 4242 after the fix above; minimal: the steps below less
    ``flush_table``, a no-op with one port). eth0 is detached, eth1 flaps, its lease
    expires and the agent's own DHCP client addresses it (``noprefixroute``: the subnet
    route in main is the client hook's). A second double flap flushes every route of eth1;
    the kernel puts back no prefix route (noprefixroute), ISC dhclient does not notice a
    flap, and the policy cannot put the default back in main (main no longer reaches the
    gateway through eth1): ``ip route get 198.51.100.10 from 192.168.0.112`` was "Network
    is unreachable" until the lease's renewal, minutes later. Fixed here
    (agent/service.py, ``_rebind``): like a network manager on carrier, the agent puts the
    routes of a port it addresses back into main at once, from its client's lease."""
    lab.detach("eth0")
    lab.check()
    lab.double_flap("eth1")
    lab.check()
    lab.expire("eth1")
    lab.check()
    lab.double_flap("eth1")
    lab.final_check()
    assert "eth1: its lease's routes back in main" in lab.live.agent_log()


def test_sole_static_port_survives_a_flap(lab: EventLab) -> None:
    """The static twin of the test above (found by reading ``_rebind``'s first version,
    which followed the DHCP client only; then replayed here). A DHCP-disabled port is
    attached (eth2: the agent gives it the metadata's address ``noprefixroute`` and its
    routes in main, ``proto static``), eth0 and eth1 are detached, so eth2 is the only port
    and has no table; a double flap of eth2 flushes its routes from main and nothing, not
    even a lease renewal, would ever put them back: ``ip route get 198.51.100.10`` was
    "Network is unreachable" for good. Fixed with the test above: the agent puts the
    metadata's routes back."""
    port = lab.attach(dhcp=False)
    lab.check()
    lab.detach("eth0")
    lab.check()
    lab.detach("eth1")
    lab.check()
    lab.double_flap(port)
    lab.final_check()
    assert f"{port}: its static routes back in main" in lab.live.agent_log()


def test_sole_port_keeps_its_routes_when_the_agent_was_killed_and_it_flapped(
    lab: EventLab,
) -> None:
    """Found by ``make fuzz`` (seed 1001, ten steps: flaps and partial DHCP restores of eth1,
    then the three below, which alone fail the same way). eth0's lease expires, so the
    agent's own DHCP client addresses it; eth1 is detached, so eth0 is the only port. The
    agent is killed (SIGKILL: its dhclient child lives on, orphaned) and eth0 flaps while
    no agent runs. The new agent found a DHCP client running for eth0, so it neither
    started its own nor put eth0's routes back (``_rebind`` follows only its own clients),
    and the orphan does not notice a flap: eth0 had no route at all (``ip route get
    198.51.100.10``: "Network is unreachable") until the lease's renewal. Fixed here
    (agent/service.py ``_resume_dhcp``, addressing.py ``stop_earlier_client``): the client
    an earlier agent left running with the agent's own lease file is stopped and the new
    agent's own started, and the lease's routes are put back at once."""
    lab.expire("eth0")
    lab.check()
    lab.detach("eth1")
    lab.check()
    lab.restart_agent(kill=True, flap_while_down="eth0")
    lab.final_check()
    log = lab.live.agent_log()
    assert "an earlier agent's dhclient pid" in log, log
    # Who puts the routes back first, the agent from the lease file or its new client's
    # first bind, is a race on a loaded machine; final_check proved that they are back.


def test_a_foreign_rule_in_the_band_does_not_stop_the_repairs(lab: EventLab) -> None:
    """Found by ``make fuzz`` (seed 2002, nine steps: address re-adds, flaps, eth1's lease
    expiring, two foreign rules at 10002, then eth0's lease expiring; minimal: the steps
    below). Another tool adds ``fwmark 0x1 lookup 4001`` at priority 10002, inside
    multihome's band, after multihome set it up. Every policy computation then raised
    "priorities.range [10000, 10099] overlaps the existing rule" (meant for choosing a
    band at the first apply), so every repair of the agent failed: when eth0's lease then
    expired, the agent never started a DHCP client for it and eth0 stayed without an
    address. Fixed here (policy.py, ``check_config_against_host``): once multihome's rules
    are in the band, another tool's rule there is left alone and named in a note (the
    agent logs it once)."""
    lab.foreign(10002, 1)
    lab.check()
    lab.expire("eth0")
    lab.final_check()
    assert "another tool's rule '10002 from all fwmark 0x1 lookup 4001'" in lab.live.agent_log()


def test_a_restarted_agent_puts_back_the_routes_of_a_static_port_it_configured(
    lab: EventLab,
) -> None:
    """Found by ``make fuzz`` (seed 4004, sixteen steps: leases expiring, two static ports
    attached, a foreign rule, tables flushed, agent restarts, flaps, detaches; minimal: the
    steps below). A DHCP-disabled port (eth2) is configured by the agent from the
    metadata, the other ports are detached, and the agent restarts while eth2 flaps. The
    new agent did not know it had configured eth2 (``_rebind`` knew only the static ports of
    its own life), so nothing put eth2's metadata routes back into main: eth2 had no route
    at all (``ip route get 198.51.100.10``: "Network is unreachable"). Fixed here
    (agent/service.py, ``_static_of``): a port the metadata says is DHCP-disabled, holding
    the metadata's address, that no network manager manages, is the agent's to keep; its
    static routes go back into main."""
    port = lab.attach(dhcp=False)
    lab.check()
    lab.detach("eth0")
    lab.check()
    lab.detach("eth1")
    lab.check()
    lab.restart_agent(kill=False, flap_while_down=port)
    lab.final_check()
    assert f"{port}: its static routes back in main" in lab.live.agent_log()


def test_a_foreign_rule_in_the_band_of_a_sole_port_does_not_stop_the_repairs(
    lab: EventLab,
) -> None:
    """Found by ``make fuzz`` (seed 4004 again, sixteen steps, once the test above was
    fixed; minimal: the steps below). With a foreign rule at 10002 in the band, eth0 is
    detached: eth1 alone needs no rule, so multihome's rules leave the band and only the
    foreign one is left. Then eth1's address is removed and added again (its default in
    main goes with it): the policy, seeing another tool's rule in a band that held none of
    multihome's, refused again as on a first apply, every repair failed, and eth1 never got
    its default back ("Network is unreachable"). Fixed here: once a repair of the agent has
    succeeded, the band is the agent's (``Config.band_claimed``) and the foreign rule is
    only noted."""
    lab.foreign(10002, 1)
    lab.check()
    lab.detach("eth0")
    lab.check()
    lab.readd_address("eth1")
    lab.final_check()
    assert "overlaps the existing rule" not in lab.live.agent_log()


def test_a_restarted_agent_knows_the_band_of_a_sole_port_is_multihomes(lab: EventLab) -> None:
    """Found by ``make fuzz`` (seed 7007, nine steps, after the test above was fixed;
    minimal: the steps below). eth1 is detached (eth0 alone: no rule of multihome's in the
    band), another tool adds a rule at 10002, and the agent is killed while eth0 flaps.
    The new agent had not repaired yet, so the band looked like one multihome never used:
    every repair refused ("overlaps the existing rule") and eth0's default never came back.
    Fixed here (agent/service.py, ``_band_used``): an agent whose namespace has a checkpoint
    of an apply in this band knows the band is multihome's from its start."""
    lab.detach("eth1")
    lab.check()
    lab.foreign(10002, 1)
    lab.check()
    lab.restart_agent(kill=True, flap_while_down="eth0")
    lab.final_check()
    assert "overlaps the existing rule" not in lab.live.agent_log()
