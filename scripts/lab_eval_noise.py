"""Evaluation noise of the lab's measurement: one checkpoint measured on disjoint evaluation texts.

Each chosen checkpoint (the last of each run given) is measured with CETT-PPL-p% (its own
search per text, as a single checkpoint is measured) and at the plan's common CETT on
``--windows`` disjoint slices of the plan's held-out evaluation text (window w starts
after w x the budget's tokens), at each budget (sequences x tokens).  The spread of one
checkpoint's answers over the windows is the sampling noise of one measurement at that
budget; docs/lab.md reports it.  Writes JSON as it goes (resumable: finished entries are
kept).

    python scripts/lab_eval_noise.py OUT --runs relu-w48-d8-s0 relu-w144-d1-s0 \\
        --budgets 512x128,128x128 --windows 5 --json measurements/lab-cpu.evalnoise.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the lab's output folder (runs/, corpus/)")
    ap.add_argument("--runs", nargs="+", required=True, help="model names (their last checkpoint)")
    ap.add_argument("--budgets", default="512x128,128x128", help="NUM_SEQSxSEQ_LEN, comma-separated")
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--p", type=float, default=1.0)
    ap.add_argument("--common-cett", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args()
    import torch

    from sparsitylaws.measure.evaluate import encode_text
    from sparsitylaws.measure.loading import load_model, resolve_checkpoint
    from sparsitylaws.measure.metrics import ModelMeasurer
    from sparsitylaws.tables.atomic import atomic_write_text

    torch.set_num_threads(a.threads)
    text = (a.out / "corpus" / "eval.txt").read_text(encoding="utf-8")
    doc = json.loads(a.json.read_text()) if a.json.is_file() else {
        "what": __doc__.splitlines()[0], "python": platform.python_version(),
        "torch": torch.__version__, "entries": []}
    done = {(e["run"], e["budget"], e["window"]) for e in doc["entries"]}
    budgets = [tuple(int(x) for x in b.split("x")) for b in a.budgets.split(",")]
    for run in a.runs:
        ckpt = sorted((a.out / "runs" / run / "checkpoints").iterdir())[-1]
        lm = load_model(resolve_checkpoint(ckpt), "cpu", "float32")
        for n, L in budgets:
            for w in range(a.windows):
                key = (run, f"{n}x{L}", w)
                if key in done:
                    continue
                t0 = time.perf_counter()
                data = encode_text(text, lm.tokenizer, L, n, "eval.txt", offset=w)
                mm = ModelMeasurer(lm, data)
                r = mm.ppl_p(a.p)
                c = mm.cett(a.common_cett)
                doc["entries"].append({
                    "run": run, "checkpoint": ckpt.name, "budget": f"{n}x{L}", "tokens": data.n_tokens,
                    "window": w, "cett": r.cett, "ppl_p_ratio": r.activation_ratio,
                    "common_cett": a.common_cett, "common_cett_ratio": c.activation_ratio,
                    "seconds": round(time.perf_counter() - t0, 2)})
                atomic_write_text(a.json, json.dumps(doc, indent=1))
                print(f"{run} {n}x{L} window {w}: PPL-{a.p:g}% {100 * r.activation_ratio:.2f}% "
                      f"(CETT {r.cett:.4f}), CETT {a.common_cett:g}: {100 * c.activation_ratio:.2f}%",
                      flush=True)
    summary = {}
    for e in doc["entries"]:
        summary.setdefault((e["run"], e["budget"]), []).append(e)
    doc["summary"] = []
    for (run, budget), es in sorted(summary.items()):
        v = np.array([e["ppl_p_ratio"] for e in es])
        c = np.array([e["common_cett_ratio"] for e in es])
        doc["summary"].append({
            "run": run, "budget": budget, "windows": len(es), "tokens": es[0]["tokens"],
            "ppl_p_sd_pp": 100 * float(v.std(ddof=1)) if v.size > 1 else math.nan,
            "ppl_p_range_pp": 100 * float(v.max() - v.min()),
            "common_cett_sd_pp": 100 * float(c.std(ddof=1)) if c.size > 1 else math.nan})
    atomic_write_text(a.json, json.dumps(doc, indent=1))
    for s in doc["summary"]:
        print(f"{s['run']} {s['budget']}: sd {s['ppl_p_sd_pp']:.2f} pp (range {s['ppl_p_range_pp']:.2f}) "
              f"over {s['windows']} windows; at CETT {a.common_cett:g}: sd {s['common_cett_sd_pp']:.2f} pp")


if __name__ == "__main__":
    main()
