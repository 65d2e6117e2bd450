"""Never lock anyone out: snapshots, journal, lock, confirm-or-rollback, reset and doctor.

Everything multihome needs to undo its own work lives in a *state directory* per network
namespace, ``{root}/run/multihome/net-<inode>/`` (the inode of ``/proc/self/ns/net``), so that
two namespaces on one host never share state:

=====================  ======================================================================
``lock``               ``flock`` held by whoever changes the namespace (apply, rollback,
                       reset; the watchdog during a confirmation window)
``lock-owner.json``    who holds it (pid, what, since when), for the message of a waiter
``snapshot.json``      the owned state before the last apply that changed something
``journal.json``       present while an apply's kernel changes are in flight
``record.json``        cumulative: foreign routes moved out of main, sysctls' prior values
``pending.json``       an apply waits for ``multihome confirm`` (deadline, watchdog)
``confirm``            written by ``multihome confirm``
``rollback-request``   written by ``multihome rollback`` during a confirmation window
``result.json``        how the last confirmation window ended
``watchdog.log``       what the watchdog did
=====================  ======================================================================
"""
