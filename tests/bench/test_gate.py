"""The benchmark gate of `make test` judges ratios against its thresholds: a regression like
the per-address packet socket (apply slower than the how-to's way) fails it. (`make test`
runs the gate itself, alone, before the suite: bench/gate.py.)"""

from __future__ import annotations

from gate import THRESHOLDS, judge


def test_the_ratios_of_a_healthy_run_pass() -> None:
    """Ratios like those measured on the loaded 2-core machine pass every threshold."""
    verdicts = judge(
        {
            "apply: how-to's way / multihome apply": 15.0,
            "apply: multihome apply / ip -batch + sysctl -p": 12.0,
            "agent: repair latency / kernel-change phase": 5.0,
        }
    )
    assert [ok for _line, _value, ok in verdicts] == [True, True, True]


def test_the_gratuitous_arp_regression_fails_the_gate() -> None:
    """With one packet socket bound and closed per address, apply at 64 ports took about
    what the how-to's way takes (ratio ~1): the gate fails and says which ratio."""
    ratios = {name: (99.0 if above else 1.0) for name, (_t, above) in THRESHOLDS.items()}
    ratios["apply: how-to's way / multihome apply"] = 1.2
    verdicts = judge(ratios)
    failed = [line for line, _value, ok in verdicts if not ok]
    assert len(failed) == 1
    assert failed[0].startswith("FAIL apply: how-to's way / multihome apply: 1.20")


def test_a_slow_agent_fails_the_gate() -> None:
    """A repair far slower than the kernel change it makes fails the agent's ratio."""
    ratios = {name: (99.0 if above else 1.0) for name, (_t, above) in THRESHOLDS.items()}
    ratios["agent: repair latency / kernel-change phase"] = 500.0
    assert [ok for _line, _value, ok in judge(ratios)] == [True, True, False]
