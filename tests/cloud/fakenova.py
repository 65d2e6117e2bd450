"""Nova for the tests: openstacksdk's own fake compute and image proxies
(``openstack.test.fakes.generate_fake_proxy``, autospecced on the real proxies, so a call
that the real proxy would reject fails here too), wired to do what Nova does to Neutron: bind
each port of a server (device_id, device_owner, binding:host_id; the test ML2 driver then
marks it ACTIVE) and unbind it when the server goes.

This is the fake the brief allows for servers: Nova itself (1.4 GB, rabbitmq, placement,
glance) does not fit the suite's time budget. Everything on the Neutron side stays real.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openstack.compute import compute_service
from openstack.compute.v2 import flavor as _flavor
from openstack.compute.v2 import server as _server
from openstack.image import image_service
from openstack.image.v2 import image as _image
from openstack.test import fakes

from multihome.cloud.client import ComputeApi

IMAGES = ("ubuntu-24.04", "cirros")
FLAVORS = ("m1.small", "m1.tiny")


@dataclass
class FakeNova:
    """The servers of one test, kept in memory; ports bound in the real Neutron."""

    network: Any
    """A real openstacksdk connection to the test Neutron."""
    servers: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    flavor_names: dict[str, str] = field(default_factory=dict)

    def api(self) -> ComputeApi:
        compute = fakes.generate_fake_proxy(compute_service.ComputeService)
        image = fakes.generate_fake_proxy(image_service.ImageService, "2")
        compute.servers.side_effect = self._list
        compute.create_server.side_effect = self._create
        compute.wait_for_server.side_effect = lambda server, **kw: server
        compute.create_server_interface.side_effect = self._attach
        compute.get_server.side_effect = lambda server_id: self.servers[server_id]
        compute.delete_server.side_effect = self._delete
        compute.wait_for_delete.side_effect = lambda server, **kw: None
        compute.find_flavor.side_effect = self._flavor
        image.find_image.side_effect = self._image
        return ComputeApi(compute, image, poll=0.01, timeout=5)

    def _list(self, details: bool = True, **query: Any) -> list[Any]:
        self.calls.append(("servers", query))
        tag = query.get("tags")
        name = query.get("name")
        return [
            s
            for s in self.servers.values()
            if (tag is None or tag in (s.tags or []))
            and (name is None or name.strip("^$") == s.name)
        ]

    def _flavor(self, name: str, ignore_missing: bool = True) -> Any:
        if name not in FLAVORS:
            return None
        flavor = fakes.generate_fake_resource(_flavor.Flavor, name=name)
        self.flavor_names[flavor.id] = name
        return flavor

    def _image(self, name: str, ignore_missing: bool = True) -> Any:
        if name not in IMAGES:
            return None
        return fakes.generate_fake_resource(_image.Image, name=name)

    def _create(self, **attrs: Any) -> Any:
        self.calls.append(("create_server", attrs))
        server = fakes.generate_fake_resource(
            _server.Server,
            name=attrs["name"],
            status="ACTIVE",
            tags=list(attrs["tags"]),
            key_name=attrs.get("key_name"),
            has_config_drive=attrs.get("config_drive"),
            flavor={"original_name": self.flavor_names[attrs["flavor_id"]]},
            image={"id": attrs["image_id"]},
            user_data=attrs.get("user_data"),
        )
        for net in attrs["networks"]:
            self._bind(server.id, net["port"])
        self.servers[server.id] = server
        return server

    def _bind(self, server_id: str, port_id: str) -> None:
        port = self.network.network.get_port(port_id)
        if port.device_id:
            raise RuntimeError(f"port {port_id} is in use by {port.device_id}")  # Nova: 409
        self.network.network.update_port(
            port_id,
            device_id=server_id,
            device_owner="compute:nova",
            binding_host_id="fake-compute-host",
        )

    def _attach(self, server_id: str, port_id: str) -> Any:
        self.calls.append(("create_server_interface", {"server": server_id, "port": port_id}))
        self._bind(server_id, port_id)
        return None

    def _delete(self, server: Any, ignore_missing: bool = True) -> None:
        self.calls.append(("delete_server", {"server": server.id}))
        for port in self.network.network.ports(device_id=server.id):
            self.network.network.update_port(
                port.id, device_id="", device_owner="", binding_host_id=""
            )
        self.servers.pop(server.id, None)
