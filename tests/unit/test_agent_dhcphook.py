"""agent/dhcphook.py: the routes a DHCP lease carries, decoded from what dhclient passes to
its hook (option 121, classless static routes, RFC 3442; option 3 only without it)."""

from __future__ import annotations

import pytest

from multihome.agent.dhcphook import classless_routes, lease_routes


def test_dhcp_hook_decodes_classless_routes() -> None:
    """Option 121 as dhclient passes it; option 3 only without 121 (RFC 3442)."""
    text = "32 169 254 169 254 192 168 0 100 0 192 168 0 1 24 10 1 2 192 168 0 1"
    assert [(str(n), str(g)) for n, g in classless_routes(text)] == [
        ("169.254.169.254/32", "192.168.0.100"),
        ("0.0.0.0/0", "192.168.0.1"),
        ("10.1.2.0/24", "192.168.0.1"),
    ]
    assert [str(g) for _, g in lease_routes({"new_routers": "192.168.0.9 192.168.0.8"})] == [
        "192.168.0.9"
    ]
    assert (
        len(
            lease_routes(
                {"new_rfc3442_classless_static_routes": text, "new_routers": "192.168.0.9"}
            )
        )
        == 3
    )
    with pytest.raises(ValueError):
        classless_routes("24 10 1")
