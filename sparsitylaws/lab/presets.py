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
note = \"\"\"The cpu design at 10-100x the parameters, for one GPU: a ReLU width/depth sweep at
~12M non-embedding parameters (width/depth 8 to 1024, 9 ratios) and ReLU + SiLU at 4 scales
(1.7M to 30M, width/depth 48-51), 100 tokens per parameter, byte-level tokens.
Expected run time on one H100/H200: about 6 hours of training (2.1e18 training FLOPs at an
assumed 100 TFLOP/s effective in bf16; not measured here, no GPU was available) plus
well under an hour of measuring.  Set tokens_per_param = 190 for the paper's budget
(about 11 hours).\"\"\"

[corpus]
source = "stdlib+site-packages"
eval_per_mille = 100

[train]
seq_len = 512
batch_size = 128
lr = 2e-3
warmup_frac = 0.01
tokens_per_param = 100
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
name = "relu-w192-d4"
width = 192
depth = 4
head_dim = 64
activation = "relu"

[[model]]
name = "silu-w192-d4"
width = 192
depth = 4
head_dim = 64
activation = "silu"

[[model]]
name = "relu-w288-d6"
width = 288
depth = 6
head_dim = 32
activation = "relu"

[[model]]
name = "silu-w288-d6"
width = 288
depth = 6
head_dim = 32
activation = "silu"

[[model]]
name = "relu-w384-d8"
width = 384
depth = 8
head_dim = 64
activation = "relu"

[[model]]
name = "silu-w384-d8"
width = 384
depth = 8
head_dim = 64
activation = "silu"

[[model]]
name = "relu-w512-d10"
width = 512
depth = 10
head_dim = 64
activation = "relu"

[[model]]
name = "silu-w512-d10"
width = 512
depth = 10
head_dim = 64
activation = "silu"

[[model]]
name = "relu-w1024-d1"
width = 1024
depth = 1
head_dim = 64
activation = "relu"

[[model]]
name = "relu-w704-d2"
width = 704
depth = 2
head_dim = 64
activation = "relu"

[[model]]
name = "relu-w576-d3"
width = 576
depth = 3
head_dim = 64
activation = "relu"

[[model]]
name = "relu-w512-d4"
width = 512
depth = 4
head_dim = 64
activation = "relu"

[[model]]
name = "relu-w416-d6"
width = 416
depth = 6
head_dim = 32
activation = "relu"

[[model]]
name = "relu-w352-d8"
width = 352
depth = 8
head_dim = 32
activation = "relu"

[[model]]
name = "relu-w288-d12"
width = 288
depth = 12
head_dim = 32
activation = "relu"

[[model]]
name = "relu-w256-d16"
width = 256
depth = 16
head_dim = 64
activation = "relu"

[[model]]
name = "relu-w192-d24"
width = 192
depth = 24
head_dim = 64
activation = "relu"
"""

PRESETS: dict[str, str] = {"ci": CI, "cpu": CPU, "gpu": GPU}
