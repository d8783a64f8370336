"""Stage 5, planning: takes a law set and configurations nobody has trained (width, depth,
tokens, ...) and gives predicted sparsity with intervals, optionally shifted to the user's
own recipe by measured checkpoints.

* :mod:`.configs`: parameter counts, regime, the prediction for configurations;
* :mod:`.anchor`: anchors: the recipe offset read from measured checkpoints;
* :mod:`.prediction`: :func:`predict` and :func:`compare_shapes` (configurations + anchors);
* :mod:`.recipe`: which recipe a law set describes, and its caveat;
* :mod:`.default_lawset`: writes the packaged default law set (its recipe note is a
  prediction).

Imports :mod:`sparsitylaws.lawset`, :mod:`sparsitylaws.architecture` and the stages below.
"""

from sparsitylaws.planning.configs import EXTRAPOLATION_WARN, parameter_counts
from sparsitylaws.planning.prediction import compare_shapes, predict

__all__ = ["EXTRAPOLATION_WARN", "compare_shapes", "parameter_counts", "predict"]
