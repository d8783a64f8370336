"""The measurement table: one row per (run, checkpoint, metric, metric_arg).

This module owns the Arrow schema, the documentation of every column, and validation
that names the file, the column and the first bad row.  It imports no torch.

Format version: :data:`TABLE_FORMAT_VERSION` is written into the Parquet metadata under
the key ``sparsitylaws.table_version``; readers accept tables without it (foreign
Parquet) and refuse versions newer than they know.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from sparsitylaws.errors import SchemaError

TABLE_FORMAT_VERSION = 1
METADATA_KEY = b"sparsitylaws.table_version"

#: Metrics understood by the fitter and the measurement stack.
KNOWN_METRICS = ("ppl-p", "cett", "zero", "topk", "fat")


@dataclass(frozen=True)
class Column:
    """One column of the measurement table."""

    name: str
    type: pa.DataType
    required: bool
    doc: str


COLUMNS: tuple[Column, ...] = (
    # --- required -------------------------------------------------------------------------
    Column("run", pa.string(), True, "Name of one training run (one architecture, one activation)."),
    Column("checkpoint", pa.string(), True, "Checkpoint identifier within the run (path or step name)."),
    Column("tokens", pa.int64(), True, "Tokens trained at this checkpoint (raw count, > 0)."),
    Column("activation", pa.string(), True, "FFN activation function: relu, silu, gelu, ..."),
    Column("metric", pa.string(), True, "Sparsity metric: ppl-p, cett, zero, topk or fat."),
    Column("metric_arg", pa.float64(), True,
           "Metric argument: p for ppl-p (percent), CETT target for cett, k (fraction) for topk, eps for fat; NaN for zero."),
    Column("activation_ratio", pa.float64(), True,
           "Share of (token, neuron) pairs kept active, averaged over layers; in [0, 1]."),
    # --- architecture ---------------------------------------------------------------------
    Column("width", pa.int64(), False, "Hidden size d."),
    Column("depth", pa.int64(), False, "Number of decoder layers L."),
    Column("ffn_width", pa.int64(), False, "FFN intermediate size d_f."),
    Column("n_params", pa.int64(), False, "Non-embedding parameter count."),
    Column("n_params_total", pa.int64(), False, "Total parameter count, embeddings included."),
    # --- measurement context ----------------------------------------------------------------
    Column("activation_ratio_se", pa.float64(), False,
           "Standard error of activation_ratio, when known (used as fit weights)."),
    Column("cett", pa.float64(), False, "CETT value applied to every layer (for ppl-p and cett)."),
    Column("ppl_dense", pa.float64(), False, "Perplexity of the dense model on the evaluation tokens."),
    Column("ppl_sparse", pa.float64(), False, "Perplexity with the sparsity mask applied."),
    Column("layer_ratios", pa.list_(pa.float64()), False, "Per-layer activation ratios, first layer first."),
    Column("layer_thresholds", pa.list_(pa.float64()), False, "Per-layer neuron-size thresholds eps_l."),
    Column("dead_neuron_ratio", pa.float64(), False, "Share of neurons active on < 0.1% of tokens."),
    Column("warmup", pa.bool_(), False, "True for checkpoints the measurement treated as warm-up."),
    Column("not_for_fitting", pa.string(), False,
           "Why these rows must not be fitted (e.g. a deliberately broken model); empty: fittable. "
           "fit, crosscheck, report, plot leave such runs out."),
    Column("eval_dataset", pa.string(), False, "Name of the evaluation text."),
    Column("eval_tokens", pa.int64(), False, "Number of non-padding evaluation tokens."),
    Column("eval_sha256", pa.string(), False, "SHA-256 of the evaluation token ids."),
    Column("dtype", pa.string(), False, "Compute dtype of the measurement."),
    Column("device", pa.string(), False, "Device of the measurement (cpu, cuda, ...)."),
    Column("settings_hash", pa.string(), False, "Hash of the measurement settings (for resume)."),
    Column("bos", pa.bool_(), False,
           "True when every evaluation window started with the tokenizer's BOS token."),
    Column("search_warning", pa.string(), False,
           "Why the PPL-p% answer is unreliable (jagged PPL ratio across the final bracket, "
           "or a ratio far below the target); empty when sound."),
    Column("cett_joint", pa.bool_(), False,
           "True when the CETT is the run's joint one (stabilizing strategy), shared by all its rows."),
    Column("source", pa.string(), False, "measured (by this tool) or ingested (from another format)."),
    Column("tool_version", pa.string(), False, "sparsitylaws version that wrote the row."),
    Column("created_at", pa.string(), False, "UTC time the row was written (ISO 8601)."),
)

COLUMN_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)
KEY_COLUMNS: tuple[str, ...] = ("run", "checkpoint", "metric", "metric_arg")

SCHEMA = pa.schema([pa.field(c.name, c.type, nullable=True) for c in COLUMNS])


def row_keys(df: pd.DataFrame) -> pd.DataFrame:
    """The (run, checkpoint, metric, metric_arg) key of each row, NaN arguments made equal
    (the zero metric has none), ready for ``duplicated``."""
    key = df[list(KEY_COLUMNS)].copy()
    key["metric_arg"] = key["metric_arg"].fillna(-1.0e300)
    return key


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _row_label(df: pd.DataFrame, i: int) -> str:
    """Human description of row i: its position and its key, when available."""
    parts = [f"row {i}"]
    key = [f"{k}={df[k].iloc[i]!r}" for k in ("run", "checkpoint") if k in df.columns]
    if key:
        parts.append("(" + ", ".join(key) + ")")
    return " ".join(parts)


def point_keys(df: pd.DataFrame) -> pd.DataFrame:
    """The (run, tokens, metric, metric_arg) of each row, NaN arguments made equal: one
    point of a run's curve.  Two checkpoints at one point (e.g. one folder measured under
    two names) would be fitted twice."""
    key = df[["run", "tokens", "metric", "metric_arg"]].copy()
    key["metric_arg"] = key["metric_arg"].fillna(-1.0e300)
    return key


def _refuse_same_point(df: pd.DataFrame, source: str) -> None:
    key = point_keys(df)
    dup = key.duplicated(keep="first").to_numpy()
    if not dup.any():
        return
    i = _first_bad(dup)
    first = int(np.flatnonzero((key == key.iloc[i]).all(axis=1).to_numpy())[0])
    raise SchemaError(
        f"{source}: two rows for one point (run {df['run'].iloc[i]!r}, tokens "
        f"{int(df['tokens'].iloc[i])}, metric {df['metric'].iloc[i]}): {_row_label(df, i)} "
        f"(checkpoint {df['checkpoint'].iloc[i]!r}) and row {first} (checkpoint "
        f"{df['checkpoint'].iloc[first]!r}); keep one of them")


def validate_frame(df: pd.DataFrame, source: str = "<table>") -> pd.DataFrame:
    """Check a measurement table and coerce known columns to their types.

    Returns the coerced frame.  Raises :class:`SchemaError` naming ``source``, the column
    and the first bad row.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(f"{source}: missing required column(s) {', '.join(missing)}")
    if len(df) == 0:
        raise SchemaError(f"{source}: the table has no rows")
    df = df.reset_index(drop=True).copy()

    for name in ("run", "checkpoint", "activation", "metric"):
        col = df[name]
        bad = col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
        if bad.any():
            i = _first_bad(bad)
            raise SchemaError(f"{source}: column '{name}' is empty at {_row_label(df, i)}")
        df[name] = col.astype(str)
    df["activation"] = df["activation"].str.lower()
    df["metric"] = df["metric"].str.lower()

    # tokens: integral and > 0
    tokens = pd.to_numeric(df["tokens"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(tokens)
    if bad.any():
        i = _first_bad(bad)
        raise SchemaError(
            f"{source}: column 'tokens' is missing, NaN or not a number at {_row_label(df, i)}")
    bad = tokens <= 0
    if bad.any():
        i = _first_bad(bad)
        raise SchemaError(
            f"{source}: column 'tokens' must be > 0, got {tokens[i]:g} at {_row_label(df, i)}")
    bad = tokens != np.round(tokens)
    if bad.any():
        i = _first_bad(bad)
        raise SchemaError(
            f"{source}: column 'tokens' must be a whole number of tokens, got {tokens[i]!r} "
            f"at {_row_label(df, i)}")
    df["tokens"] = tokens.astype(np.int64)

    ratio = pd.to_numeric(df["activation_ratio"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(ratio)
    if bad.any():
        i = _first_bad(bad)
        raise SchemaError(
            f"{source}: column 'activation_ratio' is missing, NaN or not a number at {_row_label(df, i)}")
    bad = (ratio < 0) | (ratio > 1)
    if bad.any():
        i = _first_bad(bad)
        raise SchemaError(
            f"{source}: column 'activation_ratio' must lie in [0, 1], got {ratio[i]:g} "
            f"at {_row_label(df, i)} (percentages? divide by 100)")
    df["activation_ratio"] = ratio

    arg = pd.to_numeric(df["metric_arg"], errors="coerce").to_numpy(dtype=float)
    df["metric_arg"] = arg

    for name in ("width", "depth", "ffn_width", "n_params", "n_params_total", "eval_tokens"):
        if name not in df.columns:
            continue
        values = pd.to_numeric(df[name], errors="coerce")
        present = values.notna().to_numpy()
        bad = present & (values.fillna(1).to_numpy() <= 0)
        if bad.any():
            i = _first_bad(bad)
            raise SchemaError(f"{source}: column '{name}' must be > 0 at {_row_label(df, i)}")
        df[name] = values.astype("Int64")

    if "activation_ratio_se" in df.columns:
        se = pd.to_numeric(df["activation_ratio_se"], errors="coerce")
        bad = (se.notna() & (se <= 0)).to_numpy()
        if bad.any():
            i = _first_bad(bad)
            raise SchemaError(
                f"{source}: column 'activation_ratio_se' must be > 0 where given, at {_row_label(df, i)}")
        df["activation_ratio_se"] = se.astype(float)

    if "not_for_fitting" in df.columns:  # the reason as text; True -> a generic reason, falsy -> null
        from sparsitylaws.tables.rows import normalize_flag

        df["not_for_fitting"] = normalize_flag(df["not_for_fitting"])

    key = row_keys(df)
    dup = key.duplicated(keep="first").to_numpy()
    if dup.any():
        i = _first_bad(dup)
        first = int(np.flatnonzero((key == key.iloc[i]).all(axis=1).to_numpy())[0])
        raise SchemaError(
            f"{source}: duplicate (run, checkpoint, metric, metric_arg) at {_row_label(df, i)}, "
            f"same key as row {first}")
    _refuse_same_point(df, source)

    # Derived columns are computed, never stored.
    for derived in ("width_depth_ratio", "tokens_b"):
        if derived in df.columns:
            df = df.drop(columns=derived)
    return df


def with_derived(df: pd.DataFrame) -> pd.DataFrame:
    """Add the derived columns ``tokens_b`` (billions) and ``width_depth_ratio``."""
    out = df.copy()
    out["tokens_b"] = out["tokens"].astype(float) / 1e9
    if "width" in out.columns and "depth" in out.columns:
        out["width_depth_ratio"] = out["width"].astype(float) / out["depth"].astype(float)
    return out


def to_arrow(df: pd.DataFrame) -> pa.Table:
    """Convert a validated frame to Arrow: known columns get the schema's types, in schema
    order; unknown columns are kept after them with inferred types."""
    known = [c for c in COLUMNS if c.name in df.columns]
    extra = [c for c in df.columns if c not in COLUMN_BY_NAME]
    arrays, fields = [], []
    for col in known:
        series = df[col.name]
        if pa.types.is_list(col.type):
            values = [None if v is None or (np.isscalar(v) and pd.isna(v)) else [float(x) for x in v]
                      for v in series]
            arrays.append(pa.array(values, type=col.type))
        elif pa.types.is_integer(col.type):
            arrays.append(pa.array(pd.array(series, dtype="Int64"), type=col.type))
        elif pa.types.is_boolean(col.type):
            arrays.append(pa.array(pd.array(series, dtype="boolean"), type=col.type))
        elif pa.types.is_floating(col.type):
            arrays.append(pa.array(pd.to_numeric(series, errors="coerce"), type=col.type, from_pandas=True))
        else:
            arrays.append(pa.array(series.astype(object).where(series.notna(), None), type=col.type))
        fields.append(pa.field(col.name, col.type, nullable=True))
    for name in extra:
        arr = pa.Array.from_pandas(df[name])
        arrays.append(arr)
        fields.append(pa.field(name, arr.type, nullable=True))
    meta = {METADATA_KEY: str(TABLE_FORMAT_VERSION).encode()}
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))


def column_docs_markdown() -> str:
    """The schema as a Markdown table (used to generate docs/schema.md)."""
    lines = ["| column | type | required | meaning |", "|---|---|---|---|"]
    for c in COLUMNS:
        lines.append(f"| `{c.name}` | {c.type} | {'yes' if c.required else ''} | {c.doc} |")
    return "\n".join(lines)
