"""How far the default law set transfers to other recipes, and what anchoring buys.

One command (about a minute on two cores)::

    python benchmarks/recipe_transfer.py [--published ../shared/reference/sparsinglaw-data]
                                         [--measurements measurements] [--write | --check]

Prints Markdown blocks (docs/planning.md, "Anchoring on your own recipe"; ``--write`` puts
them there, ``--check`` fails when the docs or the priors in sparsitylaws/planning/anchor.py
hold other numbers):

0. **Priors**: tau and the nugget of each recipe's offset (published, lab-cpu, lab-gpu)
   against the default law set, and their root mean square (the stored priors).
0. **Same recipe**: law sets fitted on two published scales, anchored on every kept
   checkpoint of a third run, predicting the fourth (the true offset is 0).

1. **Offset forms on the published runs** (the paper's recipe, 8 runs).  For each
   activation, anchor on one checkpoint of one run (its last, or its first kept one) and
   predict the kept checkpoints of every *other* run of that activation with the default
   law set, shifted four ways: not at all, additively, multiplicatively (log) and on the
   logit scale.  Mean absolute error in points; coverage of the anchored 90% band (logit
   form, the stated one-anchor prior).  Also within a run: anchor on its first kept
   checkpoint, predict its later ones.
2. **Transfer table**: every trained model measured in ``measurements/`` (ppl-p, p = 1):
   the default prediction at its configuration and budget against the measurement, and,
   where another model of the same family is measured (the same table: one table, one
   recipe), the prediction anchored on each other member.

Warm-up checkpoints are those :func:`sparsitylaws.runfit.run.fit_run`'s automatic rule drops.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from docblocks import publish  # noqa: E402

from sparsitylaws.planning import predict  # noqa: E402
from sparsitylaws.planning.anchor import (  # noqa: E402
    PRIOR_DOF,
    PRIOR_NUGGET,
    PRIOR_TAU,
    Anchor,
    apply_offsets,
    estimate_offsets,
    expit,
    logit,
    read_anchors,
)
from sparsitylaws.planning.offsetfield import distances  # noqa: E402

DOC = ROOT / "docs" / "planning.md"

FORMS = ("none", "additive", "log", "logit")


def _shift(form: str, p: np.ndarray, pa: float, ya: float) -> np.ndarray:
    if form == "none":
        return p
    if form == "additive":
        return p + (ya - pa)
    if form == "log":
        return p * (ya / pa) if pa > 0 else np.full_like(p, np.nan)
    return expit(logit(p) + (logit(ya) - logit(pa)))


def _kept(table: pd.DataFrame) -> pd.DataFrame:
    """Drop each run's warm-up checkpoints by fit_run's automatic rule."""
    from sparsitylaws.errors import SparsityLawsError
    from sparsitylaws.runfit.run import fit_run

    parts = []
    for run, g in table.groupby("run"):
        g = g.sort_values("tokens")
        try:
            fit = fit_run(g["tokens"].to_numpy(float), g["activation_ratio"].to_numpy(float),
                          run=run, activation=str(g["activation"].iloc[0]), n_boot=0,
                          compare=False, backtest=False)
            start = fit.tokens_b_min * 1e9 * (1 - 1e-9)
        except SparsityLawsError:  # too few points for a fit: keep the later half
            start = 0.5 * float(g["tokens"].max())
        parts.append(g[g["tokens"] >= start])
    return pd.concat(parts, ignore_index=True)


def _law(rows: pd.DataFrame) -> pd.DataFrame:
    """Default-law prediction at each row's configuration and tokens (one activation)."""
    return predict(rows["width"].to_numpy(), rows["depth"].to_numpy(),
                   activation=str(rows["activation"].iloc[0]), tokens=rows["tokens"].to_numpy(),
                   ffn_ratio=(rows["ffn_width"] / rows["width"]).to_numpy())


def _anchor_of(row: pd.Series) -> Anchor:
    return Anchor(run=str(row["run"]), activation=str(row["activation"]), width=int(row["width"]),
                  depth=int(row["depth"]), ffn_ratio=float(row["ffn_width"] / row["width"]),
                  tokens=float(row["tokens"]), activation_ratio=float(row["activation_ratio"]))


def published_forms(published: Path) -> tuple[str, pd.DataFrame]:
    """Table 1: offset forms, cross-run and within-run, on the published runs."""
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    return forms_table(read_sparsinglaw_dir(published))


def forms_table(table: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Offset forms, cross-run and within-run, on any runs of one recipe (ppl-p rows)."""
    kept = _kept(table)
    kept = kept.assign(law=np.nan, law_low=np.nan, law_high=np.nan)
    for _run, g in kept.groupby("run"):
        pr = _law(g)
        kept.loc[g.index, "law"] = pr["activation_ratio"].to_numpy()
        kept.loc[g.index, "law_low"] = pr["ratio_low"].to_numpy()
        kept.loc[g.index, "law_high"] = pr["ratio_high"].to_numpy()
    rows = []
    for act, ga in kept.groupby("activation"):
        runs = sorted(ga["run"].unique(), key=lambda r: float(ga.loc[ga["run"] == r, "n_params"].iloc[0]))
        for where in ("last", "first kept"):
            for ra in runs:
                gr = ga[ga["run"] == ra].sort_values("tokens")
                arow = gr.iloc[-1] if where == "last" else gr.iloc[0]
                for rt in runs:
                    if rt == ra:
                        continue
                    gt = ga[ga["run"] == rt]
                    rows.append(_score(act, f"other runs, anchor = {where}", ra, rt, arow, gt))
        for ra in runs:  # within a run: first kept checkpoint -> later ones
            gr = ga[ga["run"] == ra].sort_values("tokens")
            if len(gr) < 2:
                continue
            rows.append(_score(act, "same run, later checkpoints", ra, ra, gr.iloc[0], gr.iloc[1:]))
    res = pd.DataFrame(rows)
    res.attrs["variogram"] = variogram(kept)
    agg = (res.groupby(["activation", "setting"], sort=False)
           .agg(pairs=("n", "size"), points=("n", "sum"),
                **{f"mae_{f}": (f"mae_{f}", lambda v: float(np.mean(v))) for f in FORMS},
                rms_logit_err=("sq_logit", lambda s: float(np.sqrt(s.mean()))),
                coverage_90=("covered", "mean"), width_90=("width", "mean")).reset_index())
    lines = ["| activation | anchor → targets | pairs | points | MAE none | MAE additive | "
             "MAE log | MAE logit | rms logit error | 90% band: coverage, mean width |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in agg.iterrows():
        lines.append(f"| {r['activation']} | {r['setting']} | {r['pairs']} | {r['points']} | "
                     + " | ".join(f"{100 * r[f'mae_{f}']:.2f} pp" for f in FORMS)
                     + f" | {r['rms_logit_err']:.3f} | {100 * r['coverage_90']:.0f}%, "
                     f"{100 * r['width_90']:.1f} pp |")
    return "\n".join(lines), res


def variogram(kept: pd.DataFrame) -> str:
    """How the law's logit error differs between two checkpoints, by their distance in
    decades (||(dN, d width/depth)|| + |dD|, the anchoring metric): the rms of the anchored error (error at the target
    minus error at the anchor) over every pair, and that rms / sqrt(distance)."""
    bins = [0.0, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 3.0]
    lines = ["| activation | distance (decades) | pairs | rms anchored logit error | "
             "per sqrt(decade) |", "|---|---|---|---|---|"]
    for act, g in kept.groupby("activation"):
        e = logit(g["activation_ratio"]) - logit(g["law"])
        x = np.log10(np.column_stack([g["n_params"], g["tokens"], g["width"] / g["depth"]]).astype(float))
        iu = np.triu_indices(e.size, 1)
        de = (e[:, None] - e[None, :])[iu]
        d = distances(x, x)[iu]
        for lo, hi in zip(bins[:-1], bins[1:], strict=True):
            m = (d >= lo) & (d < hi)
            if m.any():
                rms = float(np.sqrt(np.mean(de[m] ** 2)))
                lines.append(f"| {act} | {lo:g}-{hi:g} | {int(m.sum())} | {rms:.3f} | "
                             f"{rms / np.sqrt(np.mean(d[m])):.3f} |")
    return "\n".join(lines)


def _score(act, setting, ra, rt, arow, gt) -> dict:
    y = gt["activation_ratio"].to_numpy(float)
    p = gt["law"].to_numpy(float)
    pa, ya = float(arow["law"]), float(arow["activation_ratio"])
    out = {"activation": act, "setting": setting, "anchor_run": ra, "target_run": rt,
           "n": int(y.size)}
    for f in FORMS:
        out[f"mae_{f}"] = float(np.mean(np.abs(_shift(f, p, pa, ya) - y)))
    z = logit(_shift("logit", p, pa, ya)) - logit(y)
    out["sq_logit"] = float(np.mean(z**2))
    offs = estimate_offsets([_anchor_of(arow)])
    frame = pd.DataFrame({"activation": act, "level": 0.9, "a0": p, "a0_low": gt["law_low"],
                          "a0_high": gt["law_high"], "activation_ratio": p,
                          "ratio_low": gt["law_low"].to_numpy(), "ratio_high": gt["law_high"].to_numpy(),
                          "sparsity": 1 - p, "n_params": gt["n_params"].to_numpy(float),
                          "tokens": gt["tokens"].to_numpy(float),
                          "width_depth_ratio": (gt["width"] / gt["depth"]).to_numpy(float)})
    an = apply_offsets(frame, offs)
    out["covered"] = float(np.mean((y >= an["ratio_low"]) & (y <= an["ratio_high"])))
    out["width"] = float(np.mean(an["ratio_high"] - an["ratio_low"]))
    return out


def _family(path: Path) -> str:
    """One table, one recipe: each lab plan (lab-cpu, lab-gpu) has its own corpus, batch and
    schedule, so its runs anchor each other and no other table's."""
    return path.stem


def _dist(a: Anchor, b: Anchor) -> float:
    """Decades between two checkpoints (N as 12 d^2 L; the anchoring metric)."""
    def x(c: Anchor) -> np.ndarray:
        return np.log10([12.0 * c.width**2 * c.depth, c.tokens, c.width / c.depth])

    return float(distances(x(a), x(b))[0, 0])


def transfer_rows(measurements: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Default vs measured for every trained model's last checkpoint in ``measurements``,
    unanchored and anchored on other members of its family (the same table; any lab-*
    table): each other member alone, the nearest one, and all others together."""
    from sparsitylaws.tables.io import read_table
    from sparsitylaws.tables.rows import excluded_runs

    rows = []
    members = []
    skipped: dict[str, str] = {}
    for path in sorted(measurements.glob("*.parquet")):
        df = read_table(path)
        skipped.update(excluded_runs(df))
        df = df[(df["metric"] == "ppl-p") & np.isclose(df["metric_arg"], 1.0)]
        for run in sorted(set(df["run"]) - set(skipped)):
            last = sorted(read_anchors(df, run=run), key=lambda a: a.tokens)[-1]
            members.append((_family(path), last))
    for fam, a in members:
        pr = predict(a.width, a.depth, activation=a.activation, tokens=a.tokens, ffn_ratio=a.ffn_ratio)
        r = pr.iloc[0]
        base = {"family": fam, "run": a.run, "activation": a.activation,
                "shape": f"{a.width}x{a.depth}", "tokens": a.tokens, "measured": a.activation_ratio}
        rows.append({**base, "how": "none (default law set)", "anchor": "",
                     "pred": r["activation_ratio"], "low": r["ratio_low"], "high": r["ratio_high"]})
        others = [b for f, b in members if f == fam and b.run != a.run and b.activation == a.activation]
        near = min(others, key=lambda b: _dist(a, b)) if others else None
        for b in others:
            an = apply_offsets(pr, estimate_offsets([b])).iloc[0]
            row = {**base, "anchor": b.run, "pred": an["activation_ratio"],
                   "low": an["ratio_low"], "high": an["ratio_high"]}
            rows.append({**row, "how": "each other member (one anchor, prior)"})
            if b is near:
                rows.append({**row, "how": "nearest other member (one anchor, prior)"})
        if len(others) >= 2:
            an = apply_offsets(pr, estimate_offsets(others)).iloc[0]
            rows.append({**base, "how": "all other members (spread estimated)",
                         "anchor": f"{len(others)} runs", "pred": an["activation_ratio"],
                         "low": an["ratio_low"], "high": an["ratio_high"]})
    out = pd.DataFrame(rows)
    out["error"] = out["pred"] - out["measured"]
    out["inside"] = (out["low"] <= out["measured"]) & (out["measured"] <= out["high"])
    return out, skipped


def transfer_table(measurements: Path, full: bool = False) -> str:
    """Table 2: per family and activation, how far the default and the anchored predictions
    land from the measurements (``full``: one line per model and anchor as well)."""
    res, skipped = transfer_rows(measurements)
    lines = ["| family | activation | models | prediction | MAE | max abs error | inside 90% band | "
             "mean band width |", "|---|---|---|---|---|---|---|---|"]
    for (fam, act, how), g in res.groupby(["family", "activation", "how"], sort=False):
        lines.append(f"| {fam} | {act} | {g['run'].nunique()} | {how} | "
                     f"{100 * g['error'].abs().mean():.1f} pp | {100 * g['error'].abs().max():.1f} pp | "
                     f"{g['inside'].sum()}/{len(g)} | {100 * (g['high'] - g['low']).mean():.1f} pp |")
    if full:
        lines += ["", "| model (run) | activation | shape | tokens | measured | anchored on | "
                  "predicted [90%] | error | inside |", "|---|---|---|---|---|---|---|---|---|"]
        for _, r in res[res["how"] != "nearest other member (one anchor, prior)"].iterrows():
            lines.append(
                f"| {r['run']} | {r['activation']} | {r['shape']} | {r['tokens']:.3g} | "
                f"{100 * r['measured']:.1f}% | {r['anchor'] or 'none (default law set)'} | "
                f"{100 * r['pred']:.2f}% [{100 * r['low']:.2f}, {100 * r['high']:.2f}] | "
                f"{100 * r['error']:+.1f} pp | {'yes' if r['inside'] else 'no'} |")
    left = "; ".join(f"{k} ({v})" for k, v in skipped.items()) or "none"
    return "\n".join(lines) + f"\n\nLeft out (marked not for fitting): {left}."


def _lab_rows(measurements: Path) -> dict[str, pd.DataFrame]:
    """The ppl-p rows of each lab-* table (runs marked not for fitting left out), by table
    stem, for the tables with two runs of one activation."""
    from sparsitylaws.tables.io import read_table
    from sparsitylaws.tables.rows import not_for_fitting_mask

    out = {}
    for f in sorted(measurements.glob("lab*.parquet")):
        df = read_table(f)
        df = df[(df["metric"] == "ppl-p") & np.isclose(df["metric_arg"], 1.0) & ~not_for_fitting_mask(df)]
        if "ffn_width" in df and not df.empty and df.groupby("activation")["run"].nunique().max() >= 2:
            out[f.stem] = df
    return out


def recipe_spreads(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per recipe and activation: tau and the nugget of the offset from the default law set,
    by REML with every kept checkpoint the anchoring accepts (inside the law set's fitted
    budgets) as an anchor, no prior: the numbers behind PRIOR_TAU and PRIOR_NUGGET."""
    from sparsitylaws.planning.offsetfield import reml

    rows = []
    for name, t in tables.items():
        kept = _kept(t)
        offs = estimate_offsets(read_anchors(kept))
        for act, o in offs.items():
            pts = np.array([[a["log10_n"], a["log10_tokens"], a["log10_ratio"]] for a in o.anchors])
            off = np.array([a["offset"] for a in o.anchors])
            tau2, nug2 = reml(off, np.zeros(off.size), pts)
            rows.append({"recipe": name, "activation": act, "anchors": o.n_anchors,
                         "refused": len(o.refused), "mean_offset": float(off.mean()),
                         "tau": float(np.sqrt(tau2)), "nugget": float(np.sqrt(nug2))})
    return pd.DataFrame(rows)


def priors_md(sp: pd.DataFrame) -> tuple[str, list[str]]:
    """The priors table, and where the constants in sparsitylaws.planning.anchor differ
    from what it measures (tolerance 0.005 logit)."""
    lines = ["| recipe (against the default law set) | activation | anchors (refused) | mean offset (logit) | "
             "tau (logit per sqrt(decade)) | nugget (logit) |", "|---|---|---|---|---|---|"]
    for _, r in sp.iterrows():
        lines.append(f"| {r['recipe']} | {r['activation']} | {r['anchors']} ({r['refused']}) | "
                     f"{r['mean_offset']:+.3f} | {r['tau']:.3f} | {r['nugget']:.3f} |")
    bad = []
    for act, g in sp.groupby("activation"):
        tau = float(np.sqrt(np.mean(g["tau"] ** 2)))
        nug = float(np.sqrt(np.mean(g["nugget"] ** 2)))
        lines.append(f"| **prior (root mean square of {len(g)})** | {act} | | | **{tau:.3f}** | **{nug:.3f}** |")
        for what, have, want in (("PRIOR_TAU", PRIOR_TAU.get(act), tau), ("PRIOR_NUGGET", PRIOR_NUGGET.get(act), nug)):
            if have is None or abs(have - want) > 0.005:
                bad.append(f"{what}[{act!r}] is {have}, the recipes measure {want:.3f}")
    lines.append(f"\nThe priors weigh {PRIOR_DOF:g} observations (one per recipe).")
    return "\n".join(lines), bad


def lawset_of(t: pd.DataFrame, fits: dict, runs: list[str], **arch_kw):
    """A law set of the architecture laws fitted on ``runs`` of table ``t`` (their fits given)."""
    from sparsitylaws.architecture import build_architecture_section
    from sparsitylaws.lawset.fileformat import LawSet

    info = {r: {"activation": r.split("_")[1], **{k: float(t.loc[t["run"] == r, k].iloc[0])
                                                  for k in ("n_params", "width", "depth")}}
            for r in runs}
    sec = build_architecture_section({r: fits[r] for r in runs}, info, table=t[t["run"].isin(runs)], **arch_kw)
    return LawSet(name="+".join(runs), architecture=sec, source="benchmark")


def same_recipe_splits(t: pd.DataFrame, fits: dict, acts=("relu", "silu"), **arch_kw):
    """Every split of the published scales: a law set fitted on two, anchored on every kept
    checkpoint of a third run, predicting the fourth's kept checkpoints.  Yields (activation,
    unanchored prediction, anchored prediction, measured ratios)."""
    import itertools

    scales = ["0.1b", "0.2b", "0.4b", "0.8b"]
    for law in itertools.combinations(scales, 2):
        ls = lawset_of(t, fits, [f"{s}_{a}" for s in law for a in ("relu", "silu")], **arch_kw)
        for anc, tgt in itertools.permutations([s for s in scales if s not in law], 2):
            for act in acts:
                kept = {r: t[(t["run"] == r) & (t["tokens"] >= fits[r].tokens_b_min * 1e9 * (1 - 1e-9))]
                        for r in (f"{anc}_{act}", f"{tgt}_{act}")}
                g = kept[f"{tgt}_{act}"]
                kw = {"tokens": g["tokens"].to_numpy(), "ffn_ratio": 2.5, "lawset": ls}
                un = predict(g["width"].to_numpy(), g["depth"].to_numpy(), act, **kw)
                an = predict(g["width"].to_numpy(), g["depth"].to_numpy(), act,
                             anchor=read_anchors(kept[f"{anc}_{act}"]), **kw)
                yield act, un, an, g["activation_ratio"].to_numpy()


def same_recipe_md(published: Path) -> str:
    """A law set anchored on another run of its own recipe (the true offset is 0): fitted on
    two published scales, anchored on every kept checkpoint of a third run, predicting the
    fourth's kept checkpoints, over all 12 such splits per activation."""
    from sparsitylaws.runfit.run import fit_run
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    t = read_sparsinglaw_dir(published)
    fits = {run: fit_run(g["tokens"].to_numpy(float), g["activation_ratio"].to_numpy(float), run=run,
                         activation=str(g["activation"].iloc[0]), n_boot=100, compare=False,
                         backtest=False)
            for run, g in t.sort_values("tokens").groupby("run")}
    rows = []
    for act, un, an, y in same_recipe_splits(t, fits):
        rows.append({"activation": act, "mae_un": np.mean(np.abs(un["activation_ratio"] - y)),
                     "mae_an": np.mean(np.abs(an["activation_ratio"] - y)),
                     "w_un": np.mean(un["ratio_high"] - un["ratio_low"]),
                     "w_an": np.mean(an["ratio_high"] - an["ratio_low"]),
                     "cov_un": np.mean((un["ratio_low"] <= y) & (y <= un["ratio_high"])),
                     "cov_an": np.mean((an["ratio_low"] <= y) & (y <= an["ratio_high"])),
                     "weight": an.attrs["anchor"][0]["shrink"]})
    r = pd.DataFrame(rows)
    lines = ["| activation | splits | MAE unanchored | MAE anchored | mean band width unanchored | "
             "anchored / unanchored width (mean, max) | coverage unanchored | coverage anchored | "
             "offset weight (mean, max) |", "|---|---|---|---|---|---|---|---|---|"]
    for act, g in r.groupby("activation"):
        ratio = g["w_an"] / g["w_un"]
        lines.append(f"| {act} | {len(g)} | {100 * g['mae_un'].mean():.2f} pp | {100 * g['mae_an'].mean():.2f} pp | "
                     f"{100 * g['w_un'].mean():.2f} pp | {ratio.mean():.2f}, {ratio.max():.2f} | "
                     f"{g['cov_un'].mean():.2f} | {g['cov_an'].mean():.2f} | "
                     f"{g['weight'].mean():.2f}, {g['weight'].max():.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--published", type=Path,
                    default=ROOT.parent / "shared" / "reference" / "sparsinglaw-data")
    ap.add_argument("--measurements", type=Path, default=ROOT / "measurements")
    ap.add_argument("--full", action="store_true", help="one transfer line per model and anchor too")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the blocks into docs/planning.md")
    mode.add_argument("--check", action="store_true", help="check docs/planning.md against them")
    args = ap.parse_args(argv)
    t0 = time.time()
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    labs = _lab_rows(args.measurements)
    recipes = ({"published": read_sparsinglaw_dir(args.published)} if args.published.is_dir() else {})
    recipes.update(labs)
    blocks: dict[str, str] = {}
    text, bad = priors_md(recipe_spreads(recipes))
    blocks["anchor_priors"] = text
    if args.published.is_dir():
        blocks["anchor_same_recipe"] = same_recipe_md(args.published)
        forms, res = published_forms(args.published)
        blocks["anchor_published"] = "\n".join([forms, "", "How the offset drifts with distance "
                                                "(published runs):", "", res.attrs["variogram"]])
    blocks["anchor_transfer"] = transfer_table(args.measurements, args.full)
    lab_parts = []
    for stem, lab in labs.items():
        forms, res = forms_table(lab)
        lab_parts += [f"**Offset forms on the {stem} runs (another recipe, default law set)**", "", forms,
                      "", f"**How the offset drifts with distance ({stem} runs)**", "", res.attrs["variogram"], ""]
    blocks["anchor_lab"] = "\n".join(lab_parts)
    for name, body in blocks.items():
        print(f"<!-- {name} -->\n{body}\n")
    print(f"({time.time() - t0:.0f} s)")
    for b in bad:
        print(b, file=sys.stderr)
    rc = publish(DOC, blocks, write=args.write, check=args.check)
    return 1 if bad else rc


if __name__ == "__main__":
    raise SystemExit(main())
