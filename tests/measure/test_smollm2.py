"""Integration: the real SmolLM2-135M-Instruct (GGUF, converted once and cached), offline.

Token budget kept small for CI (2 x 128 tokens of pydoc_data.topics).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sparsitylaws.cli import main  # noqa: E402
from sparsitylaws.tables.io import read_table  # noqa: E402

pytestmark = pytest.mark.slow
BUDGET = ["--text", "pydoc", "--seq-len", "128", "--num-seqs", "2", "-q",
          "--tokens-trained", "2000000000000", "--device", "cpu", "--dtype", "float32"]


def _measure(args: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["measure", *args])
    _, err = capsys.readouterr()
    assert exc.value.code == 0, err


def test_smollm2_silu_and_relu_variant(smollm2: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "smol.parquet"
    t0 = time.perf_counter()
    _measure([str(smollm2), "--run", "smollm2-silu", "-o", str(out), *BUDGET,
              "--metric", "ppl-p"], capsys)
    _measure([str(smollm2), "--run", "smollm2-relu", "-o", str(out), *BUDGET,
              "--activation-override", "relu", "--metric", "zero", "--metric", "ppl-p"], capsys)
    elapsed = time.perf_counter() - t0
    df = read_table(out)
    silu = df[(df["run"] == "smollm2-silu")].iloc[0]
    assert silu["activation"] == "silu" and silu["depth"] == 30 and silu["width"] == 576
    # What the defined point guarantees (not a ratio within 0.1% of 1.01: on 256 tokens the
    # ratio jumps by up to a fifth of the allowed increase between grid steps): the ratio at
    # the answer is within 1 + p/100, the next grid step's is above it, and every grid
    # point from the clearing point up to the answer was measured within the target.
    ratio = silu["ppl_sparse"] / silu["ppl_dense"]
    assert ratio <= 1.01 * (1 + 1e-9), ratio
    side = json.loads(out.with_suffix(".thresholds.json").read_text())
    search = next(v for k, v in side.items() if k.startswith("smollm2-silu|"))["search"]
    lo, hi = search["bracket"]
    assert lo == pytest.approx(silu["cett"]) and hi == pytest.approx(lo + 1e-3)
    measured = {round(c, 9): g for c, g in search["evaluations"]}
    assert measured[round(hi, 9)] > math.log(1.01)
    k = round(search["clearing"] * 1000)
    while k < round(lo * 1000):
        k += 1
        assert measured[round(k / 1000, 9)] <= math.log(1.01)
    assert 0 < silu["activation_ratio"] < 1 and 0 < silu["cett"] < 1
    assert silu["eval_tokens"] == 256 and math.isfinite(silu["ppl_dense"])
    assert not silu["bos"]  # SmolLM2's tokenizer has BOS <|im_start|> but does not add it
    relu = df[df["run"] == "smollm2-relu"].set_index("metric")
    assert set(relu["activation"]) == {"relu"}
    zero, ppl = relu.loc["zero"], relu.loc["ppl-p"]
    assert 0 < zero["activation_ratio"] < 1  # ReLU gives exact zeros
    # The swapped model is badly broken (its PPL is in the thousands) and truncation need not
    # raise its PPL monotonically, so only feasibility is required of its PPL-p% row.
    assert ppl["ppl_sparse"] / ppl["ppl_dense"] <= 1.01 + 1e-9
    assert 0 <= ppl["cett"] <= 1 and 0 < ppl["activation_ratio"] <= 1
    print(f"SmolLM2 integration: {elapsed:.1f} s for both runs")
