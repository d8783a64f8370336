"""Study: how the CETT-PPL-p% answer varies with the number of evaluation tokens.

For each budget (sequences x tokens per sequence) the CETT of SmolLM2-135M-Instruct is
searched on several disjoint windows of ``pydoc_data.topics`` (window w starts after w
budgets' worth of tokens), with the default fast search at ``--xtol``.  The spread of the
answers over windows is the noise of one measurement at that budget; docs/measure.md
reports it.  Writes JSON (one entry per budget and window) as it goes.

    python benchmarks/token_study.py --json study.json [--budgets 2x128,4x256,8x512 --windows 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch

from sparsitylaws.measure.evaluate import encode_text, load_text
from sparsitylaws.measure.loading import load_model, resolve_checkpoint
from sparsitylaws.measure.metrics import ModelMeasurer

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from measure_search import smollm2_path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="2x128,4x256,8x512")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--first-window", type=int, default=0,
                    help="start at this window (to run windows in separate processes)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--p", type=float, default=1.0)
    ap.add_argument("--xtol", type=float, default=1e-3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ref = resolve_checkpoint(smollm2_path())
    name, text = load_text("pydoc")
    out: dict = {"machine": platform.platform(), "torch": torch.__version__, "p": args.p,
                 "xtol": args.xtol, "entries": []}
    for spec in args.budgets.split(","):
        n, s = (int(x) for x in spec.split("x"))
        for w in range(args.first_window, args.first_window + args.windows):
            t0 = time.perf_counter()
            lm = load_model(ref, "cpu", "float32")
            data = encode_text(text, lm.tokenizer, s, n, name, offset=w)
            mm = ModelMeasurer(lm, data)
            r = mm.ppl_p(args.p, "fast", xtol=args.xtol)
            res = r.search
            assert res is not None
            lo, hi = res.bracket
            ev = dict(res.evaluations)
            e = {"budget": spec, "window": w, "tokens": data.n_tokens, "bos": data.bos,
                 "cett": r.cett, "ppl_ratio": r.ppl_sparse / r.ppl_dense,
                 "activation_ratio": r.activation_ratio, "ppl_dense": r.ppl_dense,
                 "bracket": [lo, hi], "log_ratio_lo": ev.get(lo, 0.0), "log_ratio_hi": ev.get(hi),
                 "passes": res.passes, "wall_s": time.perf_counter() - t0,
                 "warning": getattr(res, "warning", None)}
            out["entries"].append(e)
            print(json.dumps(e), flush=True)
            if args.json:
                with open(args.json, "w") as fh:
                    json.dump(out, fh, indent=1)
    for spec in args.budgets.split(","):
        cs = np.array([e["cett"] for e in out["entries"] if e["budget"] == spec])
        ar = np.array([e["activation_ratio"] for e in out["entries"] if e["budget"] == spec])
        print(f"{spec}: CETT mean {cs.mean():.4f} sd {cs.std(ddof=1) if len(cs) > 1 else 0:.4f} "
              f"range [{cs.min():.4f}, {cs.max():.4f}]; activation ratio mean {ar.mean():.4f} "
              f"sd {ar.std(ddof=1) if len(ar) > 1 else 0:.4f}")


if __name__ == "__main__":
    main()
