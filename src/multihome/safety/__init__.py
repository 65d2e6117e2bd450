"""Never lock anyone out: the operations built on the engine and its transaction.

The guarded apply with its confirm-or-rollback window (:mod:`~multihome.safety.guard`,
:mod:`~multihome.safety.window`) and the watchdog that ends an unconfirmed window
(:mod:`~multihome.safety.watchdog`), the post-apply reachability checks
(:mod:`~multihome.safety.checks`), ``rollback`` / ``reset`` / ``confirm``
(:mod:`~multihome.safety.commands`), ``doctor`` and their CLI verbs. The primitives they use
(lock, state directory, journal, checkpoint) are in :mod:`multihome.transaction`.
"""
