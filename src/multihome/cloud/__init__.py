"""The OpenStack side of multihome: provision multi-port VMs from one topology file.

::

    topology.yaml ─> topology (parse, validate)  ─┐
    the cloud ─────> state (read, by tag) ────────┴─> plan (pure diff) ─> apply (openstacksdk)

Modules: :mod:`~multihome.cloud.topology` (the file format, validated at load),
:mod:`~multihome.cloud.state` (what was found in the cloud, as frozen values),
:mod:`~multihome.cloud.plan` (pure: desired minus found, warnings),
:mod:`~multihome.cloud.client` (the only module that talks to the cloud, through openstacksdk,
imported lazily), :mod:`~multihome.cloud.apply` (executes a plan, translates refusals),
:mod:`~multihome.cloud.userdata` (cloud-config for the guest) and
:mod:`~multihome.cloud.cli` (the ``multihome cloud`` verbs).

Every resource multihome creates carries the tag ``multihome:<topology name>``; only resources
carrying it are ever changed or deleted.
"""
