"""Shipped plans: ``ci`` (a test, < 2 minutes on 2 cores), ``cpu`` (the committed
experiment: 5 width/depth ratios x 3 seeds at 0.2M parameters), ``gpu`` (the same design
at 1.6M parameters, for 10 minutes of one GPU).  Print one with
``sparsitylaws lab PRESET --print-plan`` and edit it to make your own plan."""

from __future__ import annotations

CI = """\
name = "ci"
seed = 0
note = "2 tiny gated models (ReLU, SiLU), 8 checkpoints each: an end-to-end smoke test"

[corpus]
eval_per_mille = 100
max_train_bytes = 2_000_000
eval_bytes = 16_384
clean = true

[train]
seq_len = 64
batch_size = 16
lr = 3e-3
lr_width_ref = 32
warmup_frac = 0.05
decay_frac = 0.2
checkpoints = 8
first_checkpoint_frac = 0.05
threads = 1

[measure]
seq_len = 64
num_seqs = 4
common_cett = 0.1

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
seeds = [0, 1, 2]
note = \"\"\"ReLU width/depth sweep at ~0.2M non-embedding parameters: 5 ratios (6, 16, 27, 48, 144;
depth 8 to 1) x 3 seeds, one head size (16), gated FFN (d_f = 2.5 d), byte-level tokens.
Learning rate per shape (muP-style: hidden matrices at lr * 64 / width), warm-up, constant,
then a linear decay over the last 10%.  Corpus: the standard library and six pinned
packages' sources, cleaned (no generated tables, no near duplicates, no 128-byte verbatim
overlap between training and evaluation text); every checkpoint measured on the same
65,536 held-out tokens.  Sized to finish in about 2 hours on one CPU core (one torch
thread): 12 tokens per parameter, no zero metric (docs/lab.md: rerun it bigger).\"\"\"

[corpus]
source = "stdlib+packages"
packages = ["numpy", "scipy", "pandas", "matplotlib", "torch", "transformers"]
eval_per_mille = 50
eval_slice = 2048
eval_bytes = 327_680
clean = true

[train]
seq_len = 128
batch_size = 32
lr = 3e-3
lr_width_ref = 64
warmup_frac = 0.02
decay_frac = 0.1
min_lr_ratio = 0.1
tokens_per_param = 12
checkpoints = 12
first_checkpoint_frac = 0.02
threads = 1

[measure]
seq_len = 128
num_seqs = 512
common_cett = 0.1
zero_for_relu = false

[fit]
n_boot = 200

[[model]]
name = "relu-w48-d8"
width = 48
depth = 8
head_dim = 16
activation = "relu"

[[model]]
name = "relu-w64-d4"
width = 64
depth = 4
head_dim = 16
activation = "relu"

[[model]]
name = "relu-w80-d3"
width = 80
depth = 3
head_dim = 16
activation = "relu"

[[model]]
name = "relu-w96-d2"
width = 96
depth = 2
head_dim = 16
activation = "relu"

[[model]]
name = "relu-w144-d1"
width = 144
depth = 1
head_dim = 16
activation = "relu"
"""

GPU = """\
name = "gpu"
seed = 0
seeds = [0, 1, 2]
note = \"\"\"For one GPU in 10 minutes (scripts/lab-gpu.sh: sizing, training, measuring, fit, report):
a ReLU width/depth sweep at ~1.6M non-embedding parameters, 5 ratios (16, 48, 75, 128, 384;
depth 8 to 1, two of them above the paper's bottleneck of ~114) x 3 seeds, one head size
(32), gated FFN (d_f = 2.5 d), byte-level tokens, bf16.  Learning rate per shape
(muP-style: hidden matrices at lr * 192 / width), warm-up, constant, then a linear decay
over the last 10%.  Corpus as the cpu preset's (cleaned; 65,536 held-out evaluation tokens
per checkpoint).  30 tokens per parameter (about 730 optimizer steps of 65,536 tokens); the
script's sizing lowers it to what fits the time left, counting measuring.\"\"\"

[corpus]
source = "stdlib+packages"
packages = ["numpy", "scipy", "pandas", "matplotlib", "torch", "transformers"]
eval_per_mille = 50
eval_slice = 2048
eval_bytes = 327_680
clean = true

[train]
seq_len = 512
batch_size = 128
lr = 2e-3
lr_width_ref = 192
warmup_frac = 0.02
decay_frac = 0.1
min_lr_ratio = 0.1
tokens_per_param = 30
checkpoints = 12
first_checkpoint_frac = 0.02
mixed_precision = "bf16"

[measure]
seq_len = 512
num_seqs = 128
device = "auto"
common_cett = 0.1
zero_for_relu = false

[fit]
n_boot = 200

[[model]]
name = "relu-w128-d8"
width = 128
depth = 8
head_dim = 32
activation = "relu"

[[model]]
name = "relu-w192-d4"
width = 192
depth = 4
head_dim = 32
activation = "relu"

[[model]]
name = "relu-w224-d3"
width = 224
depth = 3
head_dim = 32
activation = "relu"

[[model]]
name = "relu-w256-d2"
width = 256
depth = 2
head_dim = 32
activation = "relu"

[[model]]
name = "relu-w384-d1"
width = 384
depth = 1
head_dim = 32
activation = "relu"
"""

PRESETS: dict[str, str] = {"ci": CI, "cpu": CPU, "gpu": GPU}
