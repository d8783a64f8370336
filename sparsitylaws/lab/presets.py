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
Sized to finish in about 45-50 minutes on 2 shared CPU cores (one torch thread): 12 tokens
per parameter for the ~0.2M models, 20-60 for the smaller ones (docs/lab.md: rerun it bigger).\"\"\"

[corpus]
eval_per_mille = 100

[train]
seq_len = 128
batch_size = 32
lr = 3e-3
warmup_frac = 0.02
tokens_per_param = 12
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

GPU = """\
name = "gpu"
seed = 0
note = \"\"\"For one GPU: a ReLU width/depth sweep at ~1.6M non-embedding parameters (10 ratios,
width/depth 6 to 384: depth 16 to 1) and ReLU + SiLU at 3 scales (0.09M, 0.43M, 1.7M),
gated FFN (d_f = 2.5 d), byte-level tokens, 190 tokens per parameter (the paper's budget).
The 95k and 434k models train at batch 16 and 64 (about 2,200 and 2,500 steps; the sweep
about 4,600 at 128).  Training is about 5.4e15 parameter-tokens (6e16 FLOPs); small models
leave a GPU idle between kernel launches, so run it with --workers (e.g. 5).  To fit a
shorter lease, size it first: python -m sparsitylaws.lab.sizing gpu --budget-s 300
--workers 5 -o gpu-sized.toml (measurements/lab-gpu.plan.toml is the plan that ran, with
its measured wall times in measurements/README.md).\"\"\"

[corpus]
eval_per_mille = 100

[train]
seq_len = 512
batch_size = 128
lr = 2e-3
warmup_frac = 0.01
tokens_per_param = 190
checkpoints = 20
first_checkpoint_frac = 0.01
mixed_precision = "bf16"

[measure]
seq_len = 512
num_seqs = 32
device = "auto"

[fit]
n_boot = 1000

[[model]]
name = "relu-w64-d2"
batch_size = 16
width = 64
depth = 2
head_dim = 32
activation = "relu"

[[model]]
name = "silu-w64-d2"
batch_size = 16
width = 64
depth = 2
head_dim = 32
activation = "silu"

[[model]]
name = "relu-w112-d3"
batch_size = 64
width = 112
depth = 3
head_dim = 28
activation = "relu"

[[model]]
name = "silu-w112-d3"
batch_size = 64
width = 112
depth = 3
head_dim = 28
activation = "silu"

[[model]]
name = "silu-w192-d4"
width = 192
depth = 4
head_dim = 64
activation = "silu"

[[model]]
name = "relu-w384-d1"
width = 384
depth = 1
head_dim = 64
activation = "relu"

[[model]]
name = "relu-w256-d2"
width = 256
depth = 2
head_dim = 64
activation = "relu"

[[model]]
name = "relu-w216-d3"
width = 216
depth = 3
head_dim = 36
activation = "relu"

[[model]]
name = "relu-w192-d4"
width = 192
depth = 4
head_dim = 64
activation = "relu"

[[model]]
name = "relu-w168-d5"
width = 168
depth = 5
head_dim = 42
activation = "relu"

[[model]]
name = "relu-w152-d6"
width = 152
depth = 6
head_dim = 38
activation = "relu"

[[model]]
name = "relu-w128-d8"
width = 128
depth = 8
head_dim = 32
activation = "relu"

[[model]]
name = "relu-w120-d10"
width = 120
depth = 10
head_dim = 40
activation = "relu"

[[model]]
name = "relu-w104-d12"
width = 104
depth = 12
head_dim = 26
activation = "relu"

[[model]]
name = "relu-w96-d16"
width = 96
depth = 16
head_dim = 32
activation = "relu"
"""

PRESETS: dict[str, str] = {"ci": CI, "cpu": CPU, "gpu": GPU}
