"""Which share of the checkpoints, and which GPU, one process takes (Slurm arrays, torchrun).

* ``--shard i/n`` keeps the checkpoints whose position in the sorted list is i modulo n;
  ``--shard auto`` reads it from Slurm (``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT``)
  or torchrun (``RANK``/``WORLD_SIZE``; ``LOCAL_RANK`` picks the GPU).

Used by :class:`~sparsitylaws.measure.runner.Runner`; the names are still importable from
:mod:`sparsitylaws.measure.runner`.
"""

from __future__ import annotations

import os
import re

from sparsitylaws.errors import MeasureError


def parse_shard(spec: str | None, env: dict | None = None) -> tuple[int, int]:
    """'i/n' -> (i, n), 0 <= i < n; None -> (0, 1); 'auto' -> from Slurm array or torchrun
    environment variables (see :func:`shard_from_env`)."""
    if not spec:
        return 0, 1
    if spec.strip() == "auto":
        return shard_from_env(os.environ if env is None else env)
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise MeasureError(f"--shard {spec}: expected i/n with 0 <= i < n (e.g. 0/4)")
    return int(m.group(1)), int(m.group(2))


def shard_from_env(env: dict) -> tuple[int, int]:
    """(i, n) from ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT`` (minus
    ``SLURM_ARRAY_TASK_MIN``), else torchrun's ``RANK`` and ``WORLD_SIZE``."""
    if "SLURM_ARRAY_TASK_ID" in env:
        try:
            i = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
            n = int(env["SLURM_ARRAY_TASK_COUNT"])
        except (KeyError, ValueError):
            raise MeasureError("--shard auto: SLURM_ARRAY_TASK_ID is set but "
                               "SLURM_ARRAY_TASK_COUNT is missing or not a number") from None
    elif "RANK" in env:
        try:
            i, n = int(env["RANK"]), int(env["WORLD_SIZE"])
        except (KeyError, ValueError):
            raise MeasureError("--shard auto: RANK is set but WORLD_SIZE is missing or not a "
                               "number") from None
    else:
        raise MeasureError("--shard auto: neither SLURM_ARRAY_TASK_ID nor RANK is set (run it "
                           "in a Slurm array or under torchrun, or give --shard i/n)")
    if not 0 <= i < n:
        raise MeasureError(f"--shard auto: task {i} of {n} is out of range")
    return i, n


def local_device(device: str, env: dict | None = None) -> str:
    """'auto' under torchrun with CUDA: one GPU per rank, ``cuda:LOCAL_RANK``."""
    env = os.environ if env is None else env
    if device == "auto" and "LOCAL_RANK" in env:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{int(env['LOCAL_RANK'])}"
    return device
