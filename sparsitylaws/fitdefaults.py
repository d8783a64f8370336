"""Defaults shared by every command and function that fits laws (no imports: light to load).

One place, so ``fit``, ``plot``, ``report`` and ``crosscheck`` cannot drift apart: a report
fitted from the same tables shows the same intervals as ``fit``'s law set.
"""

#: The metric laws are fitted on unless another is asked for (CETT-PPL-p%).
DEFAULT_METRIC = "ppl-p"
#: Bootstrap replicates of each run fit.
N_BOOT = 1000
#: Interval level.
LEVEL = 0.9
