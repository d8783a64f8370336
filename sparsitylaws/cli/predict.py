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

from sparsitylaws.architecture.common import DEFAULT_METHOD, METHODS
from sparsitylaws.cli.options import laws_option, level_option, output_option
from sparsitylaws.cli.params import TOKEN_COUNT, PositiveNumber, WholeNumber
from sparsitylaws.errors import SparsityLawsError

GRID_REQUIRED = ("width", "depth")
GRID_OPTIONAL = ("activation", "tokens", "ffn_ratio", "gated")


def _load(laws: str | None):
    from sparsitylaws.architecture import check_section
    from sparsitylaws.lawset.fileformat import load_lawset

    ls = load_lawset(laws)
    check_section(ls.architecture, source=f"law set {laws or 'default'}")
    return ls


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _row_warnings(row: pd.Series) -> list[str]:
    """A row's warnings as a list (planning joins them with "; ")."""
    w = str(row.get("warning") or "")
    return [x for x in w.split("; ") if x]


def _anchored(df: pd.DataFrame, anchors: tuple[str, ...], ls, method: str) -> pd.DataFrame:
    """Shift the predictions to the user's recipe (sparsitylaws.planning.anchor); the offsets'
    descriptions lead the caveats, since they change what the intervals mean."""
    if not anchors:
        return df
    from sparsitylaws.planning.anchor import anchor_frame

    return anchor_frame(df, list(anchors), lawset=ls, method=method)


def _recipe_echo(ls, df: pd.DataFrame | None = None) -> None:
    from sparsitylaws.planning.recipe import recipe_line

    line = (df.attrs.get("recipe") if df is not None else None) or recipe_line(ls)
    if line:
        click.echo(line + " (see caveats)")


def _print_single(df: pd.DataFrame, ls, explicit_tokens: bool) -> None:
    sec = ls.architecture
    r0 = df.iloc[0]
    lvl = int(round(100 * r0["level"]))
    where = ls.source or "?"
    click.echo(f"law set: {ls.name}  [{where}]")
    _recipe_echo(ls, df)
    click.echo(f"configuration: width {r0['width']}, depth {r0['depth']}, FFN ratio {r0['ffn_ratio']:g} "
               f"({'gated' if r0['gated'] else 'not gated'}), width/depth {r0['width_depth_ratio']:.1f}")
    click.echo(f"parameters: non-embedding {r0['n_params']:.4g}, total {r0['n_params_total']:.4g}")
    bn = sec["bottleneck"]
    bint = bn.get("interval")
    for _, r in df.iterrows():
        if r.get("widthdepth", "none") == "none":
            continue
        act = r["activation"]
        model = (sec["activations"][act].get("widthdepth") or {}).get("model")
        if r["widthdepth"] == "fitted" and model != "hinge":
            band = sec["stable_band"]["range"]
            click.echo(f"regime ({act}): no bottleneck (the width/depth sweep supports no breakpoint; "
                       f"A0 against width/depth: {model}); {r['stable_band']} stable band {band[0]:g}-{band[1]:g}")
            continue
        kind = "fitted hinge" if r["widthdepth"] == "fitted" else "assumed, not fitted"
        src = "fitted" if str(bn.get("source", "")).startswith("width/depth hinge") else "paper's"
        click.echo(f"regime ({act}; width/depth law {kind}): {r['regime']}  "
                   f"({src} bottleneck"
                   + (f", {lvl}% interval {bint[0]:.0f}-{bint[1]:.0f})" if bint else ", no interval)"))
    if explicit_tokens:
        how = "given"
    else:
        how = (f"default: {r0['tokens_per_param']:.0f} per non-embedding parameter, the most this law "
               "set's runs were trained on")
    click.echo(f"tokens: {r0['tokens']:.4g} ({how})")
    click.echo("")
    click.echo(f"{'activation':<11}{'limit A0 [' + str(lvl) + '% interval]':<30}"
               f"{'A(D) at tokens [' + str(lvl) + '%]':<30}{'sparsity':>9}")
    for _, r in df.iterrows():
        a0 = f"{_pct(r['a0'])} [{_pct(r['a0_low'])}, {_pct(r['a0_high'])}]"
        ad = f"{_pct(r['activation_ratio'])} [{_pct(r['ratio_low'])}, {_pct(r['ratio_high'])}]"
        mark = (" (clamped)" if bool(r.get("clamped", False)) else "") + (
            " (A0 at its bound, see warnings)" if bool(r.get("a0_at_bound", False)) else "")
        click.echo(f"{r['activation']:<11}{a0:<30}{ad:<30}{_pct(r['sparsity']):>9}{mark}")
        if bool(r.get("anchored", False)):
            click.echo(f"{'':<11}(law before anchoring: A0 {_pct(r['law_a0'])}, "
                       f"A(D) {_pct(r['law_activation_ratio'])} [{_pct(r['law_ratio_low'])}, "
                       f"{_pct(r['law_ratio_high'])}])")
    notes = []
    for _, r in df.iterrows():
        notes += [w if w.startswith(f"{r['activation']}:") or w.startswith("no width/depth law")
                  else f"{r['activation']}: {w}" for w in _row_warnings(r)]
    if notes:
        click.echo("\nwarnings:")
        for n in notes:
            click.echo(f"  {n}")
    cav = list(df.attrs.get("caveats") or [])
    if cav:
        click.echo("\ncaveats of this law set:")
        for c in cav:
            click.echo(f"  - {c}")
    used = ", ".join(f"{a} by '{m}'" for a, m in dict(zip(df["activation"].astype(str),
                                                        df["method"].astype(str), strict=True)).items())
    how = ("the nearest scale(s)' curves at equal tokens per parameter, scale-step "
           "errors calibrated on the law set's own scale steps" if set(df["method"].astype(str))
           <= {"nearest", "step"} else "percentiles of draws of the scale trends and of the runs")
    click.echo(f"\nmethod: A(D) {used}; intervals: {how}, and the width/depth law's draws; "
               "see docs/architecture.md")


#: Spellings of a grid's ``gated`` cells (case-insensitive); anything else is an error.
GATED_TRUE = ("true", "yes", "y", "t", "1", "gated")
GATED_FALSE = ("false", "no", "n", "f", "0", "not gated")


def _sniff_separator(p: Path) -> str:
    """The grid file's column separator: tab for .tsv/.tab, else what the header line uses
    (comma, tab, semicolon or bar; comma when it holds none)."""
    if p.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    try:
        head = p.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return ","
    counts = {sep: head.count(sep) for sep in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _cell_text(raw: pd.Series) -> pd.Series:
    """Cells as stripped text, "" for a blank (empty or missing) cell."""
    return raw.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip())


def _numbers(p: Path, c: str, raw: pd.Series, blank_ok: bool) -> pd.Series:
    """A numeric grid column; NaN for a blank cell where ``blank_ok``; an error naming the
    file, column and row for anything else that is not a finite number (``nan`` included).
    Token cells accept what ``--tokens`` accepts (``2e12``, ``2T``, ``300B``)."""
    from sparsitylaws.cli.params import parse_token_count

    text = _cell_text(raw)
    out = np.full(len(raw), np.nan)
    for i, t in enumerate(text):
        if t == "":
            if blank_ok:
                continue
            raise SparsityLawsError(f"{p}: column '{c}' row {i + 1}: blank (every row needs a {c})")
        try:
            v = float(parse_token_count(t)) if c == "tokens" else float(t.replace("_", ""))
        except ValueError as exc:
            why = str(exc) if c == "tokens" and _is_float(t) else "not a number"
            raise SparsityLawsError(f"{p}: column '{c}' row {i + 1}: {why} ({t!r})") from None
        if not math.isfinite(v):
            raise SparsityLawsError(f"{p}: column '{c}' row {i + 1}: not a finite number ({t!r})")
        out[i] = v
    return pd.Series(out, index=raw.index)


def _is_float(t: str) -> bool:
    try:
        float(t)
    except ValueError:
        return False
    return True


def _gated(p: Path, raw: pd.Series, default: bool) -> pd.Series:
    """A grid's ``gated`` column as booleans: true/false, yes/no, 1/0 (blank: ``--gated``)."""
    if raw.dtype == bool:
        return raw
    out = []
    for i, t in enumerate(_cell_text(raw)):
        low = t.lower()
        if low in ("1.0", "0.0"):
            low = low[0]
        if low == "":
            out.append(default)
        elif low in GATED_TRUE or low in GATED_FALSE:
            out.append(low in GATED_TRUE)
        else:
            raise SparsityLawsError(f"{p}: column 'gated' row {i + 1}: {t!r} is not true or false "
                                    "(write true/false, yes/no or 1/0)")
    return pd.Series(out, index=raw.index, dtype=bool)


def _read_grid(path: str, activation: str, gated: bool) -> pd.DataFrame:
    """The configurations of a grid file (CSV with any common separator, or Parquet),
    validated cell by cell: unknown columns, blank required cells, non-numbers and
    unreadable gated cells are errors naming the file, column and row."""
    import difflib

    p = Path(path)
    if not p.is_file():
        raise SparsityLawsError(f"{p}: grid file not found (argument '--grid')")
    try:
        if p.suffix.lower() == ".parquet":
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p, sep=_sniff_separator(p), dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise SparsityLawsError(f"{p}: cannot read grid file ({type(exc).__name__}: {exc})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    known = GRID_REQUIRED + GRID_OPTIONAL
    for c in df.columns:
        if c not in known:
            near = difflib.get_close_matches(c, known, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise SparsityLawsError(f"{p}: unknown column '{c}' ({hint}a grid has {', '.join(GRID_REQUIRED)} "
                                    f"and optionally {', '.join(GRID_OPTIONAL)})")
    missing = [c for c in GRID_REQUIRED if c not in df.columns]
    if missing:
        raise SparsityLawsError(
            f"{p}: grid file lacks column(s) {', '.join(missing)} (needs {', '.join(GRID_REQUIRED)}; "
            f"optional {', '.join(GRID_OPTIONAL)})")
    if df.empty:
        raise SparsityLawsError(f"{p}: grid file has no rows")
    for c in ("width", "depth", "tokens", "ffn_ratio"):
        if c in df.columns:
            df[c] = _numbers(p, c, df[c], blank_ok=c in ("tokens", "ffn_ratio"))
    if "gated" in df.columns:
        df["gated"] = _gated(p, df["gated"], gated)
    if "activation" in df.columns:
        acts = _cell_text(df["activation"]).str.lower()
        df["activation"] = acts.where(acts != "", activation)
    df["_row"] = np.arange(len(df))
    return df


def _grid_predict(df: pd.DataFrame, ls, activation: str, level: float, ffn_ratio: float,
                  gated: bool, source: str, method: str = DEFAULT_METHOD, tokens: int | None = None,
                  heads: int | None = None, kv_heads: int | None = None,
                  vocab: int | None = None) -> pd.DataFrame:
    from sparsitylaws.planning import predict as plan

    def one(sub: pd.DataFrame, act: str) -> pd.DataFrame:
        # a blank tokens (or ffn_ratio) cell means the default for that row
        parts = []
        tok_blank = sub["tokens"].isna() if "tokens" in sub else pd.Series(True, index=sub.index)
        fr_blank = sub["ffn_ratio"].isna() if "ffn_ratio" in sub else pd.Series(True, index=sub.index)
        for (tb, fb), g in sub.groupby([tok_blank, fr_blank], sort=False):
            try:
                res = plan(g["width"].to_numpy(), g["depth"].to_numpy(), activation=act,
                           tokens=tokens if tb else g["tokens"].to_numpy(),
                           ffn_ratio=ffn_ratio if fb else g["ffn_ratio"].to_numpy(),
                           gated=g["gated"].to_numpy(bool) if "gated" in g else gated,
                           n_heads=heads, n_kv_heads=kv_heads, vocab_size=vocab,
                           lawset=ls, level=level, method=method)
            except SparsityLawsError as exc:
                raise SparsityLawsError(f"{source}: {exc}") from None
            acts = res["activation"].nunique()
            res.insert(0, "_row", np.tile(g["_row"].to_numpy(), acts))
            parts.append(res)
        out = pd.concat(parts, ignore_index=True)
        out.attrs["caveats"] = parts[0].attrs.get("caveats", [])
        return out

    if "activation" in df.columns:
        parts = [one(sub, str(a)) for a, sub in df.groupby("activation", sort=False)]
    else:
        parts = [one(df, activation)]
    cav: list[str] = []
    for p in parts:
        cav += [c for c in p.attrs.get("caveats", []) if c not in cav]
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values("_row", kind="stable").reset_index(drop=True)
    out.insert(0, "grid_row", out.pop("_row") + 1)
    out.attrs["caveats"] = cav  # rows in the grid's input order, then activation
    return out


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
    for rec, (_, row) in zip(records, df.iterrows(), strict=True):
        rec["warnings"] = _row_warnings(row)
    rec = (ls.provenance or {}).get("recipe") or {}
    click.echo(json.dumps({"lawset": ls.name, "lawset_source": ls.source,
                           "recipe": df.attrs.get("recipe") or rec.get("name"),
                           "anchor": df.attrs.get("anchor", []),
                           "caveats": list(df.attrs.get("caveats") or []),
                           "predictions": records}, indent=1))


def _given(ctx: click.Context, name: str) -> bool:
    """Whether an option was given on the command line (not its default)."""
    src = ctx.get_parameter_source(name)
    return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")


def _check_mode_options(ctx: click.Context, mode: str, grid_columns: set[str]) -> None:
    """Options that the chosen mode would ignore, or that a grid's columns also set, are
    errors (never silently dropped or overridden)."""
    if ctx.params.get("kv_heads") is not None and ctx.params.get("heads") is None:
        raise SparsityLawsError("--kv-heads needs --heads (the number of attention heads)")
    if mode != "--params" and ctx.params.get("depths") is not None:
        raise SparsityLawsError("--depths goes with --params (shapes at a fixed budget), "
                                f"not with {mode}")
    if mode == "--params":
        for opt in ("heads", "kv_heads", "vocab"):
            if ctx.params.get(opt) is not None:
                raise SparsityLawsError(f"--{opt.replace('_', '-')} is not used by --params "
                                        "(its shapes have attention = 4 d^2); use --width/--depth or --grid")
    if mode == "--grid":
        for col, opt in (("tokens", "tokens"), ("ffn_ratio", "ffn_ratio"), ("gated", "gated"),
                         ("activation", "activation")):
            if col in grid_columns and _given(ctx, opt):
                flag = "--gated/--no-gated" if opt == "gated" else f"--{opt.replace('_', '-')}"
                raise SparsityLawsError(
                    f"{flag} and the grid's '{col}' column both set {col}; drop one (a blank cell "
                    f"of the column takes the default)")


@click.command("predict")
@click.option("--width", type=WholeNumber(example="4096"), help="Hidden size d (a whole number).")
@click.option("--depth", type=WholeNumber(example="48"), help="Number of layers L (a whole number).")
@click.option("--activation", default="all", show_default=True,
              help="relu, silu or all (every activation the law set covers).")
@click.option("--tokens", type=TOKEN_COUNT,
              help="Tokens trained, e.g. 2e12, 2T, 300B (default: the law set's own budget per "
                   "non-embedding parameter, 190 for the packaged one).")
@click.option("--ffn-ratio", type=PositiveNumber(), default=2.5, show_default=True, help="d_f / d.")
@click.option("--gated/--no-gated", default=True, show_default=True, help="Gated FFN (3 matrices) or not (2).")
@click.option("--heads", type=WholeNumber(example="32"),
              help="Attention heads, dividing the width (default: attention = 4 d^2).")
@click.option("--kv-heads", type=WholeNumber(example="8"), help="KV heads, dividing --heads (needs --heads; default: = heads).")
@click.option("--vocab", type=WholeNumber(example="32000"), help="Vocabulary size for the total count (default 122,753).")
@laws_option()
@click.option("--grid", type=str, help="CSV (comma, tab or semicolon separated) or Parquet of configurations: "
                                       "width, depth[, activation, tokens, ffn_ratio, gated].")
@click.option("--params", type=PositiveNumber(example="7e9"), help="Fixed non-embedding budget to compare shapes at.")
@click.option("--depths", type=str, help="Comma-separated depths for --params, e.g. 16,24,32,48,64.")
@level_option()
@click.option("--method", default=DEFAULT_METHOD, show_default=True, type=click.Choice(METHODS),
              help="How A(D) is carried to a new scale (docs/architecture.md; 'auto' picks one "
                   "by a leave-one-scale-out over the law set's own scale runs).")
@output_option((".csv", ".parquet"), "Write all rows to this file")
@click.option("--anchor", "anchors", multiple=True, metavar="TABLE[:RUN]",
              help="Measured checkpoints of your own recipe (ppl-p rows; every usable "
                   "checkpoint of the run, or of every run without :RUN); shifts the law set "
                   "to them. "
                   "Repeatable (docs/planning.md).")
@click.option("--run", "runs", multiple=True, metavar="NAME",
              help="A measured run of --laws, forecast at --tokens past its data with the calibrated "
                   "band (or read inside it). Repeatable; no configuration options with it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def predict(ctx, width, depth, activation, tokens, ffn_ratio, gated, heads, kv_heads, vocab, laws,
            grid, params, depths, level, method, anchors, runs, output, as_json) -> None:
    """Predict the activation ratio (and sparsity) of unbuilt configurations, or (--run) of a
    measured run at a token count past its data."""
    from sparsitylaws.planning import compare_shapes
    from sparsitylaws.planning import predict as plan

    if runs:
        from sparsitylaws.cli.predict_run import (
            CONFIG_OPTIONS,
            check_run_options,
            forecast_runs,
            json_runs,
            print_runs,
        )

        check_run_options([o for o in CONFIG_OPTIONS if _given(ctx, o)], tokens)
        ls = _load(laws)
        df = forecast_runs(ls, runs, tokens, level)
        if output:
            _write(df, output)
        if as_json:
            json_runs(df, ls)
        else:
            print_runs(df, ls, level)
        return
    modes = [m for m, on in (("--width/--depth", width is not None or depth is not None),
                             ("--grid", grid is not None), ("--params", params is not None)) if on]
    if len(modes) != 1:
        raise SparsityLawsError(
            "give exactly one of --width/--depth, --grid FILE or --params N --depths LIST"
            + (f" (got {', '.join(modes)})" if modes else ""))
    if tokens is not None and not (math.isfinite(tokens) and tokens > 0):
        raise SparsityLawsError(f"argument '--tokens' must be > 0, got {tokens:g}")
    table = _read_grid(grid, activation, gated) if modes[0] == "--grid" else None
    _check_mode_options(ctx, modes[0], set(table.columns) if table is not None else set())
    ls = _load(laws)
    if modes[0] == "--width/--depth":
        if width is None or depth is None:
            raise SparsityLawsError("both --width and --depth are needed")
        df = plan(width, depth, activation=activation, tokens=tokens, ffn_ratio=ffn_ratio,
                  gated=gated, n_heads=heads, n_kv_heads=kv_heads, vocab_size=vocab, lawset=ls,
                  level=level, method=method)
        df = _anchored(df, anchors, ls, method)
        if output:
            _write(df, output)
        if as_json:
            _json_out(df, ls)
        else:
            _print_single(df, ls, tokens is not None)
        return
    if modes[0] == "--grid":
        df = _grid_predict(table, ls, activation, level, ffn_ratio, gated, grid, method, tokens=tokens,
                           heads=heads, kv_heads=kv_heads, vocab=vocab)
        df = _anchored(df, anchors, ls, method)
        if output:
            _write(df, output)
        if as_json:
            _json_out(df, ls)
            return
        click.echo(f"law set: {ls.name}  [{ls.source}]   {len(df)} predictions")
        _recipe_echo(ls, df)
        _print_frame(df, ["grid_row", "width", "depth", "activation", "n_params", "width_depth_ratio", "tokens",
                          "stable_band", "a0", "activation_ratio", "ratio_low", "ratio_high",
                          "extrapolation"] + (["anchored"] if "anchored" in df else []))
        _print_row_warnings(df)
        _print_caveats(df)
        return
    if not depths:
        raise SparsityLawsError("--params needs --depths, e.g. --depths 16,24,32,48,64")
    try:
        dl = [float(x) for x in depths.split(",") if x.strip()]
    except ValueError:
        raise SparsityLawsError(f"argument '--depths' must be comma-separated numbers, got {depths!r}") from None
    df = compare_shapes(params, dl, activation=activation, tokens=tokens, ffn_ratio=ffn_ratio,
                        gated=gated, lawset=ls, level=level, method=method)
    df = _anchored(df, anchors, ls, method)
    if output:
        _write(df, output)
    if as_json:
        _json_out(df, ls)
        return
    lvl = int(round(100 * level))
    click.echo(f"law set: {ls.name}  [{ls.source}]")
    _recipe_echo(ls, df)
    click.echo(f"shapes at {params:.3g} non-embedding parameters (width rounded to a multiple of 128); "
               f"{lvl}% intervals")
    for act, g in df.groupby("activation", sort=False, observed=True):
        click.echo(f"\n{act}:")
        g = g.copy()
        g["note"] = np.where(g["sparsest"], "sparsest", "") + np.where(
            g["stable_band"] == "outside", np.where(g["sparsest"], "; ", "") + "outside stable band", "")
        _print_frame(g, ["depth", "width", "width_depth_ratio", "n_params", "stable_band",
                         "a0", "activation_ratio", "ratio_low", "ratio_high", "note"])
        if ls.architecture["activations"][act].get("widthdepth") is None:
            click.echo(f"  (no width/depth law for {act}: shapes differ only through their "
                       "slightly different parameter counts; 'sparsest' means nothing here)")
        elif ls.architecture["activations"][act]["widthdepth"].get("assumed"):
            click.echo(f"  (the width/depth effect for {act} is assumed, not fitted: see caveats)")
    _print_row_warnings(df)
    _print_caveats(df)
    click.echo("\nintervals of different shapes share the same law draws, so their differences "
               "are more certain than each interval suggests")


def _print_row_warnings(df: pd.DataFrame, max_rows: int = 30) -> None:
    """Per-row warnings in the order the rows are listed (a grid's input order), each
    naming its grid row (or depth, for --params)."""
    def label(r: pd.Series) -> str:
        if "grid_row" in r:
            return f"grid row {int(r['grid_row'])}"
        return f"depth {int(r['depth'])}"

    def text(r: pd.Series, w: str) -> str:
        prefix = f"{r['activation']}: "
        return w[len(prefix):] if w.startswith(prefix) else w

    lines = [f"  {label(r)} ({r['activation']}): {text(r, w)}" for _, r in df.iterrows()
             for w in _row_warnings(r)]
    if lines:
        click.echo("\nwarnings:")
        for line in lines[:max_rows]:
            click.echo(line)
        if len(lines) > max_rows:
            click.echo(f"  ... {len(lines) - max_rows} more (column 'warning' in --output FILE or --json)")


def _print_caveats(df: pd.DataFrame) -> None:
    cav = list(df.attrs.get("caveats") or [])
    if cav:
        click.echo("\ncaveats of this law set:")
        for c in cav:
            click.echo(f"  - {c}")


def _write(df: pd.DataFrame, path: str) -> None:
    p = Path(path)
    try:
        if p.suffix.lower() == ".parquet":
            df.to_parquet(p, index=False)
        else:
            df.to_csv(p, index=False)
    except OSError as exc:
        raise SparsityLawsError(f"{p}: cannot write ({exc.strerror})") from None
