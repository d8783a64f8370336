"""Shipped plans: ``ci`` (a test, < 2 minutes on 2 cores), ``cpu`` (the committed
experiment), ``gpu`` (the same design at 10-100x the parameters).  Print one with
``sparsitylaws lab PRESET --print-plan`` and edit it to make your own plan."""

from __future__ import annotations

CI = """\
name = "ci"
seed = 0
note = "2 tiny gated models (ReLU, SiLU), 8 checkpoints each: an end-to-end smoke test"

[corpus]
eval_per_mille = 100
max_train_bytes = 2_000_000

[train]
seq_len = 64
batch_size = 16
lr = 3e-3
warmup_frac = 0.05
checkpoints = 8
first_checkpoint_frac = 0.05
threads = 1

[measure]
seq_len = 64
num_seqs = 4

[fit]
n_boot = 50

[[model]]
name = "relu-w32-d2"
width = 32
depth = 2
activation = "relu"
tokens = 120_000

[[model]]
name = "silu-w32-d2"
width = 32
depth = 2
activation = "silu"
tokens = 120_000
"""

CPU = """\
name = "cpu"
seed = 0
note = \"\"\"ReLU width/depth sweep at ~0.2M non-embedding parameters (width/depth 4 to 144) and
ReLU + SiLU at 4 scales (12k to 0.21M), gated FFN (d_f = 2.5 d), byte-level tokens.
Sized to finish in about 45 minutes on 2 shared CPU cores: 8 tokens per parameter for
the ~0.2M models, 20-60 for the smaller ones (see docs/lab.md to rerun it bigger).\"\"\"

[corpus]
eval_per_mille = 100

[train]
seq_len = 128
batch_size = 32
lr = 3e-3
warmup_frac = 0.02
tokens_per_param = 8
checkpoints = 16
first_checkpoint_frac = 0.02
threads = 1

[measure]
seq_len = 128
num_seqs = 32

[fit]
n_boot = 200

[[model]]
name = "relu-w32-d1"
width = 32
depth = 1
head_dim = 16
activation = "relu"
tokens = 706_560

[[model]]
name = "silu-w32-d1"
width = 32
depth = 1
head_dim = 16
activation = "silu"
tokens = 706_560

[[model]]
name = "relu-w48-d1"
width = 48
depth = 1
head_dim = 16
activation = "relu"
tokens = 1_059_840

[[model]]
name = "silu-w48-d1"
width = 48
depth = 1
head_dim = 16
activation = "silu"
tokens = 1_059_840

[[model]]
name = "relu-w64-d2"
width = 64
depth = 2
head_dim = 16
activation = "relu"
tokens = 1_884_160

[[model]]
name = "silu-w64-d2"
width = 64
depth = 2
head_dim = 16
activation = "silu"
tokens = 1_884_160

[[model]]
name = "relu-w128-d1"
width = 128
depth = 1
head_dim = 32
activation = "relu"

[[model]]
name = "relu-w40-d10"
width = 40
depth = 10
head_dim = 20
activation = "relu"

[[model]]
name = "relu-w96-d2"
width = 96
depth = 2
head_dim = 32
activation = "relu"

[[model]]
name = "silu-w96-d2"
width = 96
depth = 2
head_dim = 32
activation = "silu"

[[model]]
name = "relu-w56-d5"
width = 56
depth = 5
head_dim = 28
activation = "relu"

[[model]]
name = "relu-w144-d1"
width = 144
depth = 1
head_dim = 48
activation = "relu"

[[model]]
name = "relu-w64-d4"
width = 64
depth = 4
head_dim = 16
activation = "relu"

[[model]]
name = "relu-w72-d3"
width = 72
depth = 3
head_dim = 24
activation = "relu"

[[model]]
name = "relu-w48-d7"
width = 48
depth = 7
head_dim = 16
activation = "relu"
"""

PRESETS: dict[str, str] = {"ci": CI, "cpu": CPU}
