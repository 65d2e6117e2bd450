"""Fixtures of the cloud tests (defined in cloud_support.py, a uniquely named module, so that
other areas' package-less conftest.py files cannot shadow the helpers the tests import)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # cloud_support, fakenova

from cloud_support import cloud_env, fake_nova, neutron, nova, nova_env

__all__ = ["cloud_env", "fake_nova", "neutron", "nova", "nova_env"]
