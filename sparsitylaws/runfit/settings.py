"""Defaults shared by every command and function that fits laws (light to load).

One place, so ``fit``, ``plot``, ``report`` and ``crosscheck`` cannot drift apart: a report
fitted from the same tables shows the same intervals as ``fit``'s law set.
"""

from sparsitylaws.tables.rows import DEFAULT_METRIC  # the metric is chosen where rows are selected

#: Bootstrap replicates of each run fit.
N_BOOT = 1000
#: Interval level.
LEVEL = 0.9

__all__ = ["DEFAULT_METRIC", "LEVEL", "N_BOOT"]
