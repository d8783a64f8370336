"""``sparsitylaws predict``: sparsity of configurations nobody has trained.

Three modes: one configuration (``--width``/``--depth``), many (``--grid configs.csv``,
vectorized), or shapes at a fixed parameter budget (``--params 7e9 --depths 16,24,32``).
Every number comes with its interval and the law set that produced it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np
import pandas as pd

from sparsitylaws.errors import SparsityLawsError

GRID_REQUIRED = ("width", "depth")
GRID_OPTIONAL = ("activation", "tokens", "ffn_ratio", "gated")


def _load(laws: str | None):
    from sparsitylaws.architecture import check_section
    from sparsitylaws.lawset import load_lawset

    ls = load_lawset(laws)
    check_section(ls.architecture, source=f"law set {laws or 'default'}")
    return ls


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _detail_warnings(row: pd.Series, ranges: dict) -> list[str]:
    from sparsitylaws.planning import EXTRAPOLATION_WARN

    names = {"n_params": "non-embedding params", "tokens": "tokens", "ratio": "width/depth",
             "width": "width", "depth": "depth"}
    values = {"n_params": row["n_params"], "tokens": row["tokens"], "ratio": row["width_depth_ratio"],
              "width": row["width"], "depth": row["depth"]}
    out = []
    for dim, label in names.items():
        dist = row[f"extrap_{dim}"]
        rg = ranges.get(dim)
        if rg is None or not np.isfinite(dist) or dist <= 0:
            continue
        side = "above" if values[dim] > rg[1] else "below"
        msg = (f"{label} {values[dim]:.4g} is {10 ** dist:.2g}x {side} the fitted range "
               f"{rg[0]:.3g}-{rg[1]:.3g}")
        out.append(msg + (" (far: treat as a rough extrapolation)" if dist > EXTRAPOLATION_WARN else ""))
    if "no width/depth law" in str(row["warning"]):
        out.append(f"no width/depth law for {row['activation']}: A0 assumes the fitted runs' ratio")
    return out


def _print_single(df: pd.DataFrame, ls, explicit_tokens: bool) -> None:
    sec = ls.architecture
    r0 = df.iloc[0]
    lvl = int(round(100 * r0["level"]))
    where = ls.source or "?"
    click.echo(f"law set: {ls.name}  [{where}]")
    click.echo(f"configuration: width {r0['width']}, depth {r0['depth']}, FFN ratio {r0['ffn_ratio']:g} "
               f"({'gated' if r0['gated'] else 'not gated'}), width/depth {r0['width_depth_ratio']:.1f}")
    click.echo(f"parameters: non-embedding {r0['n_params']:.3g}, total {r0['n_params_total']:.3g}")
    bn = sec["bottleneck"]
    bint = bn.get("interval")
    src = "fitted" if str(bn.get("source", "")).startswith("width/depth hinge") else "paper"
    click.echo(f"regime: {r0['regime']}  (bottleneck: {src}"
               + (f", {lvl}% interval {bint[0]:.0f}-{bint[1]:.0f})" if bint else ", no interval)"))
    how = "given" if explicit_tokens else f"default: {r0['tokens_per_param']:.0f} per non-embedding parameter"
    click.echo(f"tokens: {r0['tokens']:.3g} ({how})")
    click.echo("")
    click.echo(f"{'activation':<11}{'limit A0 [' + str(lvl) + '% interval]':<30}"
               f"{'A(D) at tokens [' + str(lvl) + '%]':<30}{'sparsity':>9}")
    for _, r in df.iterrows():
        a0 = f"{_pct(r['a0'])} [{_pct(r['a0_low'])}, {_pct(r['a0_high'])}]"
        ad = f"{_pct(r['activation_ratio'])} [{_pct(r['ratio_low'])}, {_pct(r['ratio_high'])}]"
        click.echo(f"{r['activation']:<11}{a0:<30}{ad:<30}{_pct(r['sparsity']):>9}")
    notes = []
    for _, r in df.iterrows():
        rg = sec["activations"][r["activation"]].get("ranges") or {}
        notes += [f"{r['activation']}: {w}" for w in _detail_warnings(r, rg)]
    if notes:
        click.echo("\nextrapolation:")
        for n in notes:
            click.echo(f"  {n}")
    cav = []
    for act in df["activation"].unique():
        for c in sec["activations"][act].get("caveats") or []:
            if c not in cav:
                cav.append(c)
    if cav:
        click.echo("\ncaveats of this law set:")
        for c in cav:
            click.echo(f"  - {c}")
    click.echo(f"\nmethod: A(D) by '{r0['method']}'; intervals are percentiles of draws of the scale "
               "trends (bootstrap draws of the runs plus between-scale scatter) and of the "
               "width/depth law; see docs/planning.md")


def _read_grid(path: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise SparsityLawsError(f"{p}: grid file not found (argument '--grid')")
    try:
        df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise SparsityLawsError(f"{p}: cannot read grid file ({type(exc).__name__}: {exc})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in GRID_REQUIRED if c not in df.columns]
    if missing:
        raise SparsityLawsError(
            f"{p}: grid file lacks column(s) {', '.join(missing)} (needs {', '.join(GRID_REQUIRED)}; "
            f"optional {', '.join(GRID_OPTIONAL)})")
    if df.empty:
        raise SparsityLawsError(f"{p}: grid file has no rows")
    for c in ("width", "depth", "tokens", "ffn_ratio"):
        if c in df.columns:
            vals = pd.to_numeric(df[c], errors="coerce")
            bad = vals.isna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise SparsityLawsError(f"{p}: column '{c}' row {i + 1}: not a number ({df[c].iloc[i]!r})")
            df[c] = vals
    return df


def _grid_predict(df: pd.DataFrame, ls, activation: str, level: float, ffn_ratio: float,
                  gated: bool, source: str, method: str = "excess") -> pd.DataFrame:
    from sparsitylaws.planning import predict as plan

    def one(sub: pd.DataFrame, act: str) -> pd.DataFrame:
        try:
            return plan(sub["width"].to_numpy(), sub["depth"].to_numpy(), activation=act,
                        tokens=sub["tokens"].to_numpy() if "tokens" in sub else None,
                        ffn_ratio=sub["ffn_ratio"].to_numpy() if "ffn_ratio" in sub else ffn_ratio,
                        gated=sub["gated"].astype(bool).to_numpy() if "gated" in sub else gated,
                        lawset=ls, level=level, method=method)
        except SparsityLawsError as exc:
            raise SparsityLawsError(f"{source}: {exc}") from None

    if "activation" in df.columns:
        parts = [one(sub, str(a)) for a, sub in df.groupby("activation", sort=False)]
        return pd.concat(parts, ignore_index=True)
    return one(df, activation)


def _print_frame(df: pd.DataFrame, cols: list[str], max_rows: int = 30) -> None:
    show = df[cols].copy()
    for c in ("a0", "a0_low", "a0_high", "activation_ratio", "ratio_low", "ratio_high"):
        if c in show:
            show[c] = show[c].map(lambda v: f"{100 * v:.2f}%")
    for c in ("n_params", "tokens"):
        if c in show:
            show[c] = show[c].map(lambda v: f"{v:.3g}")
    if "width_depth_ratio" in show:
        show["width_depth_ratio"] = show["width_depth_ratio"].map(lambda v: f"{v:.1f}")
    text = show.head(max_rows).to_string(index=False)
    click.echo(text)
    if len(show) > max_rows:
        click.echo(f"... {len(show) - max_rows} more rows (use --output FILE or --json for all)")


def _json_out(df: pd.DataFrame, ls) -> None:
    records = json.loads(df.to_json(orient="records", double_precision=15))
    click.echo(json.dumps({"lawset": ls.name, "lawset_source": ls.source,
                           "predictions": records}, indent=1))


@click.command("predict")
@click.option("--width", type=float, help="Hidden size d.")
@click.option("--depth", type=float, help="Number of layers L (a whole number).")
@click.option("--activation", default="all", show_default=True,
              help="relu, silu or all (every activation the law set covers).")
@click.option("--tokens", type=float, help="Tokens trained (default 190 x non-embedding params).")
@click.option("--ffn-ratio", type=float, default=2.5, show_default=True, help="d_f / d.")
@click.option("--gated/--no-gated", default=True, show_default=True, help="Gated FFN (3 matrices) or not (2).")
@click.option("--heads", type=int, help="Attention heads (default: attention = 4 d^2).")
@click.option("--kv-heads", type=int, help="KV heads (default: = heads).")
@click.option("--vocab", type=int, help="Vocabulary size for the total count (default 122,753).")
@click.option("--laws", type=str, help="Law set JSON (default: the packaged one).")
@click.option("--grid", type=str, help="CSV/Parquet of configurations: width, depth[, activation, tokens, ffn_ratio, gated].")
@click.option("--params", type=float, help="Fixed non-embedding budget to compare shapes at.")
@click.option("--depths", type=str, help="Comma-separated depths for --params, e.g. 16,24,32,48,64.")
@click.option("--level", type=float, default=0.9, show_default=True, help="Interval level.")
@click.option("--method", default="excess", show_default=True,
              help="How A(D) is carried to a new scale: excess, curve or coef (docs/architecture.md).")
@click.option("-o", "--output", type=str, help="Write all rows to this CSV or Parquet file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def predict(width, depth, activation, tokens, ffn_ratio, gated, heads, kv_heads, vocab, laws,
            grid, params, depths, level, method, output, as_json) -> None:
    """Predict the activation ratio (and sparsity) of unbuilt configurations."""
    from sparsitylaws.planning import compare_shapes
    from sparsitylaws.planning import predict as plan

    modes = [m for m, on in (("--width/--depth", width is not None or depth is not None),
                             ("--grid", grid is not None), ("--params", params is not None)) if on]
    if len(modes) != 1:
        raise SparsityLawsError(
            "give exactly one of --width/--depth, --grid FILE or --params N --depths LIST"
            + (f" (got {', '.join(modes)})" if modes else ""))
    if tokens is not None and not (math.isfinite(tokens) and tokens > 0):
        raise SparsityLawsError(f"argument '--tokens' must be > 0, got {tokens:g}")
    ls = _load(laws)
    if modes[0] == "--width/--depth":
        if width is None or depth is None:
            raise SparsityLawsError("both --width and --depth are needed")
        df = plan(width, depth, activation=activation, tokens=tokens, ffn_ratio=ffn_ratio,
                  gated=gated, n_heads=heads, n_kv_heads=kv_heads, vocab_size=vocab, lawset=ls,
                  level=level, method=method)
        if output:
            _write(df, output)
        if as_json:
            _json_out(df, ls)
        else:
            _print_single(df, ls, tokens is not None)
        return
    if modes[0] == "--grid":
        df = _grid_predict(_read_grid(grid), ls, activation, level, ffn_ratio, gated, grid, method)
        if output:
            _write(df, output)
        if as_json:
            _json_out(df, ls)
            return
        click.echo(f"law set: {ls.name}  [{ls.source}]   {len(df)} predictions")
        _print_frame(df, ["width", "depth", "activation", "n_params", "width_depth_ratio", "tokens",
                          "stable_band", "a0", "activation_ratio", "ratio_low", "ratio_high",
                          "extrapolation"])
        return
    if not depths:
        raise SparsityLawsError("--params needs --depths, e.g. --depths 16,24,32,48,64")
    try:
        dl = [float(x) for x in depths.split(",") if x.strip()]
    except ValueError:
        raise SparsityLawsError(f"argument '--depths' must be comma-separated numbers, got {depths!r}") from None
    df = compare_shapes(params, dl, activation=activation, tokens=tokens, ffn_ratio=ffn_ratio,
                        gated=gated, lawset=ls, level=level, method=method)
    if output:
        _write(df, output)
    if as_json:
        _json_out(df, ls)
        return
    lvl = int(round(100 * level))
    click.echo(f"law set: {ls.name}  [{ls.source}]")
    click.echo(f"shapes at {params:.3g} non-embedding parameters (width rounded to a multiple of 128); "
               f"{lvl}% intervals")
    for act, g in df.groupby("activation", sort=False):
        click.echo(f"\n{act}:")
        g = g.copy()
        g["note"] = np.where(g["sparsest"], "sparsest", "") + np.where(
            g["stable_band"] == "outside", np.where(g["sparsest"], "; ", "") + "outside stable band", "")
        _print_frame(g, ["depth", "width", "width_depth_ratio", "n_params", "stable_band",
                         "a0", "activation_ratio", "ratio_low", "ratio_high", "note"])
        if ls.architecture["activations"][act].get("widthdepth") is None:
            click.echo(f"  (no width/depth law for {act}: shapes differ only through their "
                       "slightly different parameter counts; 'sparsest' means nothing here)")
    click.echo("\nintervals of different shapes share the same law draws, so their differences "
               "are more certain than each interval suggests")


def _write(df: pd.DataFrame, path: str) -> None:
    p = Path(path)
    try:
        if p.suffix == ".parquet":
            df.to_parquet(p, index=False)
        else:
            df.to_csv(p, index=False)
    except OSError as exc:
        raise SparsityLawsError(f"{p}: cannot write ({exc.strerror})") from None
