"""``sparsitylaws predict --run NAME --tokens T``: a measured run of a law set, forecast past its
data (or read inside it), with the calibrated band: the question of a user partway into a
training run ("what will the activation ratio be at the end, and how sure are you?")."""

from __future__ import annotations

import json
import math

import click
import pandas as pd

from sparsitylaws.errors import SparsityLawsError

#: predict's options that describe an unbuilt configuration: meaningless for a measured run.
CONFIG_OPTIONS = ("width", "depth", "grid", "params", "depths", "heads", "kv_heads", "vocab",
                  "ffn_ratio", "gated", "method", "anchors", "activation")


def check_run_options(given: list[str], tokens: float | None) -> None:
    """``--run`` forecasts a run of the law set: configuration options are errors (never
    silently ignored), and ``--tokens`` is required (the budget to forecast at)."""
    if given:
        flags = ", ".join("--anchor" if g == "anchors" else "--" + g.replace("_", "-") for g in given)
        raise SparsityLawsError(f"--run forecasts a measured run of the law set; {flags} describe(s) an "
                                "unbuilt configuration and cannot go with it")
    if tokens is None:
        raise SparsityLawsError("--run needs --tokens, the token count to forecast at (e.g. the planned "
                                "end of training: --tokens 2e9)")


def forecast_runs(ls, runs: tuple[str, ...], tokens: float, level: float) -> pd.DataFrame:
    """One row per run (``LawSet.predict``), with the run's activation, last measured tokens,
    how far past them, and the forecast model's source, weights and drift beta."""
    if not ls.runs:
        raise SparsityLawsError(f"--run: law set '{ls.name}' holds no measured runs; pass --laws FILE, a "
                                "law set written by 'sparsitylaws fit'")
    df = ls.predict(run=list(runs), tokens=[tokens], level=level)
    extra = []
    for name in df["run"]:
        rf = ls.get_run(name)
        model, _ = rf.forecast_model()
        last = float(rf.tokens_b_max) * 1e9
        extra.append({"activation": rf.activation, "last_measured_tokens": last,
                      "past_last": tokens / last,
                      "forecast_source": model.source,
                      "forecast_weights": json.dumps(model.weights_for(rf.activation)),
                      "forecast_beta": model.beta_for(rf.activation)})
    out = pd.concat([df, pd.DataFrame(extra, index=df.index)], axis=1)
    out.attrs.update(df.attrs)
    return out


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.2f}%"


def print_runs(df: pd.DataFrame, ls, level: float) -> None:
    """The forecast of each run in a few lines: the band, where it comes from, its warnings."""
    from sparsitylaws.lawset.neartie import run_near_tie, weights_text

    lvl = int(round(100 * level))
    click.echo(f"law set: {ls.name}  [{ls.source}]")
    for _, r in df.iterrows():
        t = float(r["tokens"])
        head = f"\n{r['run']} ({r['activation']}), measured to {r['last_measured_tokens']:.3g} tokens; at {t:.3g} tokens"
        if bool(r["forecast"]):
            click.echo(head + f" ({r['past_last']:.2f}x its last checkpoint): a forecast past the data")
            click.echo(f"  activation ratio {_pct(r['activation_ratio'])}  {lvl}% band "
                       f"[{_pct(r['pred_low'])}, {_pct(r['pred_high'])}] (where a checkpoint measured "
                       f"there would fall)   sparsity {_pct(r['sparsity'])}")
            click.echo(f"  the law alone: {_pct(r['law_ratio'])} [{_pct(r['law_low'])}, {_pct(r['law_high'])}]")
            click.echo(f"  forecast: {weights_text(json.loads(r['forecast_weights']))}, drift beta {r['forecast_beta']:g}; "
                       f"calibrated on {r['forecast_source']}")
            note = run_near_tie(ls, str(r["run"]))
            if note:
                click.echo(f"  note: {note}")
        else:
            click.echo(head + ": inside the measured range, the fitted law")
            click.echo(f"  activation ratio {_pct(r['activation_ratio'])}  {lvl}% interval of the curve "
                       f"[{_pct(r['ratio_low'])}, {_pct(r['ratio_high'])}]; of one checkpoint "
                       f"[{_pct(r['pred_low'])}, {_pct(r['pred_high'])}]   sparsity {_pct(r['sparsity'])}")
        if r.get("warning"):
            click.echo(f"  warning: {r['warning']}")


def json_runs(df: pd.DataFrame, ls) -> None:
    """The rows as JSON, with the law set's name and each row's forecast weights as an object."""
    records = json.loads(df.to_json(orient="records", double_precision=15))
    for rec in records:
        rec["forecast_weights"] = json.loads(rec["forecast_weights"])
    click.echo(json.dumps({"lawset": ls.name, "lawset_source": ls.source, "runs": records}, indent=1))
