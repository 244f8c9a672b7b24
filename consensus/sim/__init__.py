"""Deterministic simulator that drives Cores under faults and checks invariants every step.

``run_seed(SimConfig(...), seed)`` runs one seed; ``pantheon sim`` runs many (see
:mod:`consensus.sim.cli`). Modules: ``rng`` (per-purpose seeded generators),
``scheduler`` (virtual time), ``network`` (links), ``faults`` (fault mix and the
partition/crash plan), ``node`` (an honest validator and its disk), ``byzantine``
(one module per behaviour), ``invariants`` (the checker), ``runner`` (one run).
"""
