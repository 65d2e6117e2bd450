"""The lab: a miniature OpenStack tenant network in network namespaces (``multihome lab``).

It reproduces each scenario of the how-to, shows its failure, and proves multihome's fix end
to end. Scenarios are data (:mod:`multihome.lab.scenario`); names and configuration texts are
pure functions (:mod:`multihome.lab.topology`); :mod:`multihome.lab.runtime` builds and
removes a lab; :mod:`multihome.lab.probe` measures it.
"""
