"""The controller: training policies, evidence, and the retrain → shadow → promote → watch cycle.

* :mod:`~sparkhu.control.policies` — training policies (``[[policies]]`` and those set at run time).
* :mod:`~sparkhu.control.evidence` — what decisions are made from: live errors of two models on the
  same points, drift events (a :class:`~sparkhu.control.evidence.Evidence` protocol and its
  implementation over the prediction store and the lake).
* :mod:`~sparkhu.control.gate` — the promotion gate and the rollback rule, as pure functions.
* :mod:`~sparkhu.control.moves` — promotions and rollbacks by hand, the champion history, retrain now.
* :mod:`~sparkhu.control.controller` — the loop ``sparkhu up`` runs when policies exist.

The layer sits above ``forecast``, ``online`` and ``storage`` and below ``app``, which assembles it.
"""
