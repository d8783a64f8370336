"""The prepared GPU check of issue 23: SmolLM2-135M measured in bf16 on CUDA, the search
benchmark on the same device, and the memory estimate against the device's peak.

    scripts/gpu_measure.sh                 # on a machine with one GPU (about 3-6 minutes)
    python scripts/gpu_measure.py --tiny   # the same code path on CPU with a tiny budget

Writes one JSON (default ``docs/measure-gpu.json``, beside docs/measure.md whose GPU figures
it fills; with ``--tiny`` ``gpu_measure-tiny.json`` in the system's temporary folder, so a
dry run never overwrites the GPU's figures): device, versions, each step's numbers and wall times, after
every step.  The measured table itself goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from measure_search import run_method, smollm2_path  # noqa: E402

from sparsitylaws.measure.evaluate import encode_text, load_text  # noqa: E402
from sparsitylaws.measure.loading import load_model, resolve_checkpoint  # noqa: E402
from sparsitylaws.measure.metrics import ModelMeasurer  # noqa: E402


def memory_check(device: str, dtype: str, seq_len: int, num_seqs: int) -> dict:
    """The estimate (stats_bytes) against what the statistics really took: on CUDA the
    peak allocated during the dense pass and a search beyond the loaded model; everywhere
    the bytes the curves hold afterwards."""
    lm = load_model(resolve_checkpoint(smollm2_path()), device, dtype)
    name, text = load_text("pydoc")
    mm = ModelMeasurer(lm, encode_text(text, lm.tokenizer, seq_len, num_seqs, name))
    cuda = lm.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = mm.ppl_p(1.0, "fast")
    out = {"estimate_bytes": mm.stats_bytes(), "retained_bytes": mm.retained_bytes(),
           "search_s": time.perf_counter() - t0, "cett": res.cett,
           "passes": res.search.passes, "model_calls": mm.ev.forwards,
           "tokens": mm.data.n_tokens}
    if cuda:
        torch.cuda.synchronize()
        out["peak_beyond_model_bytes"] = torch.cuda.max_memory_allocated() - base
        out["estimate_covers_peak"] = out["estimate_bytes"] >= out["peak_beyond_model_bytes"]
    out["estimate_covers_retained"] = out["estimate_bytes"] >= out["retained_bytes"]
    return out


def measure_rows(device: str, dtype: str, seq_len: int, num_seqs: int) -> dict:
    """`sparsitylaws measure` on SmolLM2 (ppl-p and zero), as a user runs it, into a
    temporary table."""
    with tempfile.TemporaryDirectory() as tmp:
        return _measure_rows(device, dtype, seq_len, num_seqs, Path(tmp) / "smollm2.parquet")


def _measure_rows(device: str, dtype: str, seq_len: int, num_seqs: int, table: Path) -> dict:
    from sparsitylaws.measure.runner import MeasureSettings, Runner
    from sparsitylaws.tables.io import read_table

    s = MeasureSettings(run="smollm2-135m-gpu", output=table, seq_len=seq_len, num_seqs=num_seqs,
                        metrics=["ppl-p", "zero"], device=device, dtype=dtype,
                        tokens_trained=2 * 10 ** 12, quiet=True)
    t0 = time.perf_counter()
    Runner(s, log=lambda m: print(m, file=sys.stderr)).run([str(smollm2_path())])
    wall = time.perf_counter() - t0
    df = read_table(table)
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v)
             for k, v in r.items() if k in ("metric", "cett", "activation_ratio", "ppl_dense",
                                            "ppl_sparse", "search_warning", "dtype", "device",
                                            "eval_tokens")} for r in df.to_dict("records")]
    return {"wall_s": wall, "rows": rows}


def benchmark(device: str, dtype: str, seq_len: int, num_seqs: int, methods: list[str]) -> dict:
    args = argparse.Namespace(seq_len=seq_len, num_seqs=num_seqs, p=1.0, xtol=1e-3, device=device,
                              dtype=dtype, per_pass=None, activation_override=None)
    out = {}
    for m in methods:
        r = run_method(m, args)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out[m] = {k: v for k, v in r.items() if not k.startswith("_") and k != "evaluations"}
        print(f"  {m}: {r['wall_s']:.1f} s, {r['search_passes']} passes, cett {r['cett']:.4f}",
              file=sys.stderr, flush=True)
    if "fast" in out:
        for base in methods:
            if base != "fast":
                out[f"wall_ratio_{base}_over_fast"] = out[base]["wall_s"] / out["fast"]["wall_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true",
                    help="CPU, float32, 2 x 32 tokens: the same code path as a dry run")
    ap.add_argument("--json", type=Path, default=None,
                    help="output (default docs/measure-gpu.json; with --tiny, "
                         "gpu_measure-tiny.json in the temporary folder)")
    args = ap.parse_args()
    if args.json is None:
        args.json = (Path(tempfile.gettempdir()) / "gpu_measure-tiny.json" if args.tiny
                     else ROOT / "docs" / "measure-gpu.json")
    if args.tiny:
        device, dtype, seq, n, methods = "cpu", "float32", 32, 2, ["fast", "authors"]
    else:
        if not torch.cuda.is_available():
            sys.exit("gpu_measure: no CUDA device (torch.cuda.is_available() is False); "
                     "use --tiny for the CPU dry run")
        device, dtype, seq, n, methods = "cuda", "bfloat16", 512, 8, ["fast", "bisect", "paper",
                                                                      "authors"]
    doc: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor()
                 or platform.machine(), "torch": torch.__version__, "tiny": args.tiny,
                 "dtype": dtype, "tokens": f"{n} x {seq}", "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    t0 = time.perf_counter()
    steps = (("measure", lambda: measure_rows(device, dtype, seq, n)),
             ("memory", lambda: memory_check(device, dtype, seq, n)),
             ("benchmark", lambda: benchmark(device, dtype, seq if args.tiny else 256,
                                             n if args.tiny else 4, methods)))
    for name, step in steps:
        print(f"gpu_measure: {name} ...", file=sys.stderr, flush=True)
        try:
            doc[name] = step()
        except Exception as exc:  # keep what the other steps measured
            doc[name] = {"error": f"{type(exc).__name__}: {exc}"}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    doc["total_s"] = time.perf_counter() - t0
    args.json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(f"gpu_measure: {doc['total_s']:.0f} s; written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
