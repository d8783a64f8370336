"""Published facts from the Sparsing Law paper, restated with their citation.

Y. Luo, C. Song, X. Han, Y. Chen, C. Xiao, Z. Liu, M. Sun. "Sparsing Law: Towards Large
Language Models with Greater Activation Sparsity". arXiv:2411.02335 (v4, ICML 2025).

Only numbers printed in the paper (Table 2, the configuration table, and statements in
the text) live here; no measured data points are copied.
"""

from __future__ import annotations

from dataclasses import dataclass

CITATION = (
    "Luo et al., Sparsing Law: Towards Large Language Models with Greater Activation "
    "Sparsity, arXiv:2411.02335 (v4, ICML 2025)"
)


@dataclass(frozen=True)
class PaperConfig:
    """One model scale of the paper's MiniCPM-style family."""

    scale: str  # "0.1b", ...
    width: int  # hidden size d
    depth: int  # layers L
    n_params: float  # non-embedding parameters, as published
    batch_tokens: float

    @property
    def ffn_width(self) -> int:
        """Gated FFN intermediate size d_f = 2.5 d."""
        return int(round(2.5 * self.width))

    @property
    def width_depth_ratio(self) -> float:
        return self.width / self.depth


#: Configurations per scale (d and L from the authors' configuration files).
CONFIGS: dict[str, PaperConfig] = {
    c.scale: c
    for c in (
        PaperConfig("0.1b", 768, 16, 1.08e8, 3.27e5),
        PaperConfig("0.2b", 1024, 20, 2.41e8, 5.90e5),
        PaperConfig("0.4b", 1280, 24, 4.52e8, 7.86e5),
        PaperConfig("0.8b", 1536, 28, 7.60e8, 1.18e6),
        PaperConfig("1.2b", 1792, 32, 1.18e9, 1.57e6),
        PaperConfig("2.4b", 2304, 40, 2.44e9, 2.10e6),
    )
}

#: Vocabulary size of the paper's models (for total parameter counts).
VOCAB_SIZE = 122_753
HEAD_DIM = 128
FFN_RATIO = 2.5

#: Table 2 (v4): data-law coefficients, D in billions of tokens.
#: ReLU: A(D) = exp(-c D^alpha + b) + A0 ; SiLU: A(D) = -c D^(-alpha) + A0.
TABLE2: dict[tuple[str, str], dict[str, float]] = {
    ("relu", "0.1b"): {"alpha": 1.01e-1, "b": -1.51e-2, "c": 3.20e0, "A0": 6.14e-2},
    ("relu", "0.2b"): {"alpha": 4.49e-1, "b": -3.05e0, "c": 2.86e-1, "A0": 6.74e-2},
    ("relu", "0.4b"): {"alpha": 6.83e-1, "b": -3.46e0, "c": 7.90e-2, "A0": 6.90e-2},
    ("relu", "0.8b"): {"alpha": 1.01e0, "b": -3.49e0, "c": 7.97e-3, "A0": 7.21e-2},
    ("relu", "1.2b"): {"alpha": 1.33e0, "b": -3.89e0, "c": 9.03e-4, "A0": 7.82e-2},
    ("relu", "2.4b"): {"alpha": 1.53e0, "b": -3.46e0, "c": 1.56e-4, "A0": 6.48e-2},
    ("silu", "0.1b"): {"alpha": 4.79e-1, "c": 1.02e-1, "A0": 4.09e-1},
    ("silu", "0.2b"): {"alpha": 8.44e-1, "c": 2.08e-1, "A0": 3.90e-1},
    ("silu", "0.4b"): {"alpha": 1.03e0, "c": 4.20e-1, "A0": 3.85e-1},
    ("silu", "0.8b"): {"alpha": 9.95e-1, "c": 5.62e-1, "A0": 3.83e-1},
    ("silu", "1.2b"): {"alpha": 9.67e-1, "c": 5.38e-1, "A0": 3.82e-1},
}

#: Width/depth findings (0.1B ReLU sweep; no points released).
BOTTLENECK_WIDTH_DEPTH = 114.0
PLATEAU_ACTIVATION_RATIO_RELU = 0.08
STABLE_WIDTH_DEPTH_BAND = (74.0, 282.0)
#: Token budget used by the paper: at least 190 x non-embedding parameters.
TOKENS_PER_PARAM = 190.0
#: Non-embedding parameters per layer in units of d^2: 4 (attention) + 3 * 2.5 (gated FFN).
NONEMB_COEF = 4.0 + 3.0 * FFN_RATIO


def scale_from_name(name: str) -> str | None:
    """The paper's scale key ("0.1b") found in a run or file name such as "0.1b_relu"."""
    import re

    m = re.search(r"(\d+(?:\.\d+)?)\s*b(?![a-z])", name.lower())
    if not m:
        return None
    key = f"{float(m.group(1)):g}b"
    return key if key in CONFIGS else None
