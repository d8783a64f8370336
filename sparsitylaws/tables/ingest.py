"""Convert other people's activation-ratio numbers into our measurement table.

Two sources:

* the JSON files published with the Sparsing Law paper (one file per run, named like
  ``0.1b_relu.json``: ``{"token_passed": [...], "activation_ratio": [...]}``); width,
  depth and parameter counts come from the paper's configuration table
  (:mod:`sparsitylaws.paper`);
* any CSV file, with a column mapping and constants given on the command line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from sparsitylaws.errors import SchemaError, SparsityLawsError
from sparsitylaws.paper import CITATION, CONFIGS, VOCAB_SIZE, scale_from_name
from sparsitylaws.tables.schema import COLUMN_BY_NAME, validate_frame
from sparsitylaws.version import __version__

#: Largest token count a converted table may hold (1e17: thousands of times the largest
#: training runs; a scaled column beyond it was scaled twice).
MAX_TOKENS = 1e17

_ACTIVATIONS = ("relu", "silu", "gelu", "swiglu", "geglu", "relu2", "squared_relu")


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def activation_from_name(name: str) -> str | None:
    """The activation named in a file or run name (``0.1b_relu`` -> ``relu``)."""
    tokens = re.split(r"[^a-z0-9]+", name.lower())
    for act in _ACTIVATIONS:
        if act in tokens:
            return act
    return None


def _load_published_file(path: Path) -> tuple[list, list]:
    text = path.read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        # Plain text fallback: two whitespace- or comma-separated columns.
        rows = [re.split(r"[\s,]+", ln.strip()) for ln in text.splitlines() if ln.strip()]
        try:
            pairs = [(float(r[0]), float(r[1])) for r in rows if not r[0].startswith("#")]
        except (ValueError, IndexError):
            raise SchemaError(f"{path}: neither JSON nor two numeric columns") from None
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if not isinstance(obj, Mapping):
        raise SchemaError(f"{path}: expected a JSON object with token_passed and activation_ratio")
    for key in ("token_passed", "activation_ratio"):
        if key not in obj:
            raise SchemaError(f"{path}: missing key '{key}'")
        if not isinstance(obj[key], list):
            raise SchemaError(f"{path}: key '{key}' must be a list")
    if len(obj["token_passed"]) != len(obj["activation_ratio"]):
        raise SchemaError(
            f"{path}: 'token_passed' has {len(obj['token_passed'])} entries but "
            f"'activation_ratio' has {len(obj['activation_ratio'])}")
    return obj["token_passed"], obj["activation_ratio"]


def read_sparsinglaw_file(path: str | Path) -> pd.DataFrame:
    """One published run file as validated table rows (metric ppl-p, p = 1)."""
    path = Path(path)
    run = path.stem
    activation = activation_from_name(run)
    if activation is None:
        raise SparsityLawsError(
            f"{path}: cannot tell the activation from the file name (expected e.g. 0.1b_relu.json)")
    tokens, ratios = _load_published_file(path)
    if not tokens:
        raise SchemaError(f"{path}: the file holds no measurements")
    scale = scale_from_name(run)
    df = pd.DataFrame({
        "run": run,
        "checkpoint": [f"tokens={int(t)}" if float(t).is_integer() else f"tokens={t}" for t in tokens],
        "tokens": np.asarray(tokens, dtype=float),
        "activation": activation,
        "metric": "ppl-p",
        "metric_arg": 1.0,
        "activation_ratio": np.asarray(ratios, dtype=float),
    })
    if scale is not None:
        cfg = CONFIGS[scale]
        df["width"] = cfg.width
        df["depth"] = cfg.depth
        df["ffn_width"] = cfg.ffn_width
        df["n_params"] = int(cfg.n_params)
        # Tied input/output embeddings (MiniCPM): one vocab x d matrix.
        df["n_params_total"] = int(cfg.n_params + VOCAB_SIZE * cfg.width)
    df["eval_dataset"] = f"published with {CITATION}"
    df["source"] = "ingested"
    df["tool_version"] = __version__
    df["created_at"] = _now()
    return validate_frame(df, source=str(path))


def read_sparsinglaw_dir(directory: str | Path) -> pd.DataFrame:
    """All published run files (``*.json``, ``*.txt``) of a directory, as one table."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SparsityLawsError(f"{directory}: not a directory")
    files = sorted(
        p for p in directory.iterdir()
        if p.suffix.lower() in (".json", ".txt") and activation_from_name(p.stem)
    )
    if not files:
        raise SparsityLawsError(
            f"{directory}: no run files found (expected names like 0.1b_relu.json)")
    frames = [read_sparsinglaw_file(f) for f in files]
    return validate_frame(pd.concat(frames, ignore_index=True), source=str(directory))


def parse_assignments(text: str | None, what: str) -> dict[str, str]:
    """Parse ``a=b,c=d`` (a --map or --set argument) into a dict; names the bad item."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise SparsityLawsError(f"{what}: expected NAME=VALUE, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        if not key or not value:
            raise SparsityLawsError(f"{what}: expected NAME=VALUE, got {item!r}")
        out[key] = value
    return out


def read_csv_table(
    path: str | Path,
    mapping: Mapping[str, str] | None = None,
    constants: Mapping[str, str] | None = None,
    tokens_scale: float = 1.0,
    ratio_percent: bool = False,
) -> pd.DataFrame:
    """A CSV of someone's own numbers as a validated table.

    ``mapping`` maps our column names to the CSV's (``tokens="step_tokens"``);
    ``constants`` fills columns with one value (``run="my-run"``).  Defaults:
    metric ``ppl-p`` with argument 1, checkpoint = the token count, activation from the
    run name when possible.  ``tokens_scale`` multiplies the token column (1e9 for a
    column in billions; an error when that takes tokens beyond :data:`MAX_TOKENS`);
    ``ratio_percent`` divides the ratio by 100 (``attrs["warnings"]`` says so when every
    ratio was below 1 already).
    """
    path = Path(path)
    mapping = dict(mapping or {})
    constants = dict(constants or {})
    for name in list(mapping) + list(constants):
        if name not in COLUMN_BY_NAME:
            raise SparsityLawsError(
                f"--map/--set: unknown column {name!r}; known columns: {', '.join(COLUMN_BY_NAME)}")
    try:
        raw = pd.read_csv(path)
    except FileNotFoundError:
        raise SparsityLawsError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: not a readable CSV file ({exc})") from None
    df = pd.DataFrame(index=raw.index)
    for ours, theirs in mapping.items():
        if theirs not in raw.columns:
            raise SchemaError(
                f"{path}: --map {ours}={theirs}: no column {theirs!r} "
                f"(columns: {', '.join(map(str, raw.columns))})")
        df[ours] = raw[theirs]
    for col in raw.columns:  # same-named columns come along unmapped
        if col in COLUMN_BY_NAME and col not in df.columns and col not in mapping.values():
            df[col] = raw[col]
    for ours, value in constants.items():
        df[ours] = value
    notes: list[str] = []
    if "tokens" in df.columns:
        given = pd.to_numeric(df["tokens"], errors="coerce")
        df["tokens"] = (given * tokens_scale).round()
        top = float(df["tokens"].max()) if df["tokens"].notna().any() else 0.0
        if top > MAX_TOKENS:
            raise SparsityLawsError(
                f"{path}: --tokens-scale {tokens_scale:g} makes the tokens up to {top:.3g} (the column holds "
                f"up to {float(given.max()):.4g}), beyond {MAX_TOKENS:.0e}, more than any model is trained on: "
                "are they already raw token counts? (then drop --tokens-scale)")
    if ratio_percent and "activation_ratio" in df.columns:
        given = pd.to_numeric(df["activation_ratio"], errors="coerce")
        if given.notna().any() and float(given.max()) < 1.0:
            notes.append(f"{path}: --ratio-percent divides the ratios by 100, but all of them are below 1 "
                         f"(largest {float(given.max()):.4g}): are they fractions already? (then drop "
                         "--ratio-percent)")
        df["activation_ratio"] = given / 100.0
    if "metric" not in df.columns:
        df["metric"] = "ppl-p"
    if "metric_arg" not in df.columns:
        df["metric_arg"] = 1.0
    if "checkpoint" not in df.columns and "tokens" in df.columns:
        df["checkpoint"] = [f"tokens={int(t)}" if pd.notna(t) else "" for t in df["tokens"]]
    if "activation" not in df.columns and "run" in df.columns:
        df["activation"] = [activation_from_name(str(r)) for r in df["run"]]
        if df["activation"].isna().any():
            raise SchemaError(
                f"{path}: column 'activation' is missing and the run name does not say it; "
                "add --set activation=relu (or silu, gelu)")
    df["source"] = "ingested"
    df["tool_version"] = __version__
    df["created_at"] = _now()
    out = validate_frame(df, source=str(path))
    out.attrs["warnings"] = notes
    return out
