"""Server steps against openstacksdk's own fake compute proxy (pure logic, no Nova)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from openstack.compute import compute_service
from openstack.compute.v2 import flavor, server
from openstack.exceptions import NotFoundException
from openstack.image import image_service
from openstack.image.v2 import image
from openstack.test import fakes

from multihome.cloud.client import ComputeApi
from multihome.errors import CloudError


def _api() -> tuple[ComputeApi, Any, Any]:
    compute = fakes.generate_fake_proxy(compute_service.ComputeService)
    images = fakes.generate_fake_proxy(image_service.ImageService, "2")
    for proxy in (compute, images):  # the fakes pre-set side effects; tests set returns
        for name in ("create_server", "images", "get_image", "find_flavor", "servers"):
            if hasattr(proxy, name):
                getattr(proxy, name).side_effect = None
    return ComputeApi(compute, images, poll=0.01, timeout=1), compute, images


def test_create_server_sends_ports_config_drive_tag_and_user_data() -> None:
    """create_server boots from the pre-created ports in order, with config drive, tag and
    base64 user-data, and waits for ACTIVE."""
    api, compute, _images = _api()
    booted = fakes.generate_fake_resource(server.Server, status="ACTIVE")
    compute.create_server.return_value = booted
    server_id = api.create_server(
        name="vm",
        image_id="img",
        flavor_id="fl",
        port_ids=["p0", "p1"],
        key_name="key",
        config_drive=True,
        user_data="#cloud-config\n",
        tags=["multihome:t"],
    )
    assert server_id == booted.id
    kwargs = compute.create_server.call_args.kwargs
    assert kwargs["networks"] == [{"port": "p0"}, {"port": "p1"}]
    assert kwargs["config_drive"] is True and kwargs["tags"] == ["multihome:t"]
    assert base64.b64decode(kwargs["user_data"]) == b"#cloud-config\n"
    compute.wait_for_server.assert_called_once()
    assert compute.wait_for_server.call_args.kwargs["status"] == "ACTIVE"


def test_lookups_name_the_fix() -> None:
    """A missing image or flavor (openstacksdk's NotFoundException: the flavor asked for with
    ignore_missing=False instead of the deprecated default, the image listed by name and then
    got by id) is a CloudError that says how to list the right names; two images of one name
    are refused."""
    api, compute, images = _api()
    images.images.return_value = []
    images.get_image.side_effect = NotFoundException("No Image found for nope")
    compute.find_flavor.side_effect = NotFoundException("No Flavor found for nope")
    with pytest.raises(CloudError, match="openstack image list"):
        api.image_id("nope")
    with pytest.raises(CloudError, match="openstack flavor list"):
        api.flavor_id("nope")
    found = fakes.generate_fake_resource(image.Image)
    images.images.return_value = [found]
    compute.find_flavor.side_effect = None
    compute.find_flavor.return_value = fakes.generate_fake_resource(flavor.Flavor)
    assert api.image_id("ok") == found.id
    assert images.images.call_args.kwargs == {"name": "ok"}
    assert api.flavor_id("ok") == compute.find_flavor.return_value.id
    assert compute.find_flavor.call_args.kwargs == {"ignore_missing": False}
    images.images.return_value = [found, found]
    with pytest.raises(CloudError, match="2 images have this name"):
        api.image_id("ok")
    images.images.return_value = []
    images.get_image.side_effect = None
    images.get_image.return_value = found
    assert api.image_id(found.id) == found.id


def test_servers_are_listed_by_tag_and_attach_uses_os_interface() -> None:
    """servers() filters by the topology's tag; attach_port creates a server interface."""
    api, compute, _images = _api()
    compute.servers.return_value = [
        fakes.generate_fake_resource(
            server.Server,
            name="vm",
            tags=["multihome:t"],
            has_config_drive="True",
            flavor={"original_name": "m1.small"},
            image={"id": "i"},
            key_name="k",
        )
    ]
    (found,) = api.servers("multihome:t")
    assert compute.servers.call_args.kwargs["tags"] == "multihome:t"
    assert found.config_drive is True and found.flavor_name == "m1.small"
    api.attach_port("sid", "pid")
    compute.create_server_interface.assert_called_once_with("sid", port_id="pid")
