"""Measurement stack: checkpoints -> activation sparsity rows (imports torch; loaded lazily).

Modules, one job each:

* :mod:`~sparsitylaws.measure.loading`  checkpoints (HF folders, GGUF) and the FFN sites
* :mod:`~sparsitylaws.measure.hooks`    forward pre-hooks on the down projections
* :mod:`~sparsitylaws.measure.evaluate` evaluation tokens, dense and masked passes, NLL
* :mod:`~sparsitylaws.measure.cett`     neuron sizes, exact CETT curves, per-layer thresholds
* :mod:`~sparsitylaws.measure.search`   CETT-PPL-p% root finding (fast) and the paper's bisection
* :mod:`~sparsitylaws.measure.metrics`  zero, top-k, FAT-eps, CETT, PPL-p% as row dictionaries
* :mod:`~sparsitylaws.measure.runner`   many checkpoints: stabilizing, resume, Parquet appends
* :mod:`~sparsitylaws.measure.settings` the measuring settings and their hash (resume)
* :mod:`~sparsitylaws.measure.trained_tokens` tokens trained of a checkpoint
* :mod:`~sparsitylaws.measure.sharding` ``--shard`` (Slurm, torchrun) and the GPU per rank
* :mod:`~sparsitylaws.measure.sidecar`  the JSON files beside the output table
"""

from __future__ import annotations
