"""The transaction primitives the engine applies under: lock, state dir, journal, checkpoint.

Everything multihome needs to undo its own work lives in a *state directory* per network
namespace, ``{root}/run/multihome/netns-<cookie>/`` (the namespace's ``SO_NETNS_COOKIE``, never
reused while the machine is up), so that two namespaces on one host never share state, not even
one that got a deleted namespace's inode (:mod:`~multihome.transaction.statedir`):

=====================  ======================================================================
``namespace.json``     what identifies the namespace (cookie, inode, boot id)
``swept``              when this namespace last removed dead namespaces' folders
``lock``               ``flock`` held by whoever changes the namespace (apply, rollback,
                       reset; the watchdog during a confirmation window), besides the
                       namespace-wide lock ``@multihome/lock`` (an abstract unix socket)
``lock-owner.json``    who holds it (pid, what, since when), for the message of a waiter
``snapshot.json``      the checkpoint: the owned state before the last apply that changed
                       something (the file keeps its historical name)
``journal.json``       present while an apply's kernel changes are in flight
``record.json``        cumulative: foreign routes moved out of main, sysctls' prior values
``pending.json``       an apply waits for ``multihome confirm`` (deadline, watchdog)
``confirm``            written by ``multihome confirm``
``rollback-request``   written by ``multihome rollback`` during a confirmation window
``result.json``        how the last confirmation window ended
``watchdog.log``       what the watchdog did
``agent.json``         the agent's state (:mod:`multihome.agent.state`)
``agent-paused.json``  reset or rollback paused the agent (:mod:`~multihome.transaction.pause`)
``fingerprint.json``   the kernel state the last apply left (a no-op apply compares, no read)
``dhclient.IF.*``      the agent's DHCP client for IF: lease, pid file (and ``dhclient-script``)
``static.IF.json``     the static configuration the agent gave IF from the metadata
=====================  ======================================================================

:mod:`~multihome.transaction.lock` serialises the writers, :mod:`~multihome.transaction.checkpoint`
saves and restores the owned state, :mod:`~multihome.transaction.journal` finishes or undoes an
apply that was killed half-way, :mod:`~multihome.transaction.session` ties the three
together for one locked apply, and :mod:`~multihome.transaction.fingerprint` lets an apply
with nothing to do say so without decoding the state. The operations built on the engine
(confirm window, watchdog, rollback, reset, doctor) live in :mod:`multihome.safety`.
"""

#: How long an apply (rollback, reset) waits for another multihome to release the lock, in
#: seconds. Defined here, in the package's face that imports nothing, so that the CLI can show
#: it as ``--lock-timeout``'s default without importing the transaction machinery.
DEFAULT_LOCK_TIMEOUT = 30.0
