"""Sizing a lab plan to a wall-time budget: the TOML edit, the estimate and its fit, the CLI."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import torch_needed

from sparsitylaws.lab.plan import parse_plan
from sparsitylaws.lab.presets import PRESETS
from sparsitylaws.lab.sizing import (
    estimate_seconds,
    fit_tokens_per_param,
    main,
    steps_at,
    with_tokens_per_param,
)
from sparsitylaws.lab.workers import split_models

MODELS = "".join(f'\n[[model]]\nname = "m{w}x{d}"\nwidth = {w}\ndepth = {d}\n'
                 for w, d in [(32, 1), (32, 2), (48, 2), (64, 3), (16, 1), (96, 4)])

# hand-written plans: (text, what with_tokens_per_param must do with it)
HAND = {
    # [train] has the key, a commented-out copy, a header comment, odd spacing, and [train]
    # after the models; a commented copy in another table too
    "replace-late-train": (
        'name = "h1"  # a note\n[corpus]\n# tokens_per_param = 3 (not this one)\nmax_train_bytes = 1_000\n'
        + MODELS + '\n[ train ]   # training\n#tokens_per_param = 9\nlr = 1e-3\n'
        '  tokens_per_param   =   40  # old\nseq_len = 128\n\n[measure]\nseq_len = 128\nnum_seqs = 2\n', "replace"),
    # [train] without the key: inserted
    "insert": ('name = "h2"\n\n[train]\nlr = 1e-3\nseq_len = 128\n# tokens_per_param = 8\n\n[fit]\nn_boot = 5\n'
               + MODELS, "insert"),
    # no [train] table at all, top-level keys first: appended as a table at the end
    "append": ('name = "h3"\nseed = 4\n' + MODELS, "append"),
    # no [train], the file ends without a newline after a [measure] table
    "append-no-newline": ('name = "h4"\n' + MODELS + '\n[measure]\nnum_seqs = 2', "append"),
}


def _cases():
    for name in ("ci", "cpu", "gpu"):
        yield pytest.param(PRESETS[name], None, id=name)
    for key, (text, how) in HAND.items():
        yield pytest.param(text, how, id=key)


@pytest.mark.parametrize("text, how", list(_cases()))
@pytest.mark.parametrize("value", [37, 2.5])
def test_with_tokens_per_param_touches_one_line(text, how, value):
    import tomllib

    before = tomllib.loads(text)
    out = with_tokens_per_param(text, value, comment="sized: test")
    after = tomllib.loads(out)
    assert parse_plan(out).train.tokens_per_param == value
    assert after["train"]["tokens_per_param"] == value
    # nothing else in the parsed plan changed
    before.setdefault("train", {})["tokens_per_param"] = value
    assert after == before
    old = text.splitlines()
    new = out.splitlines()
    setting = [i for i, ln in enumerate(new) if ln.startswith(f"tokens_per_param = {value:g}")]
    assert len(setting) == 1, out
    if how is None:  # presets: replace when [train] has the key, insert otherwise
        how = "replace" if "tokens_per_param" in before_text_train(text) else "insert"
    if how == "replace":
        # exactly the [train] key's line changed; every other line byte-identical
        assert len(new) == len(old)
        diff = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        assert diff == setting
        assert old[diff[0]].lstrip().startswith("tokens_per_param")
    elif how == "insert":
        # one line added right under the [train] header, the rest as it was
        del new[setting[0]]
        assert new == old
        assert old[setting[0] - 1].replace(" ", "").startswith("[train]")
    else:
        # a [train] table added at the end; the text before it is unchanged
        assert new[setting[0] - 1] == "[train]" and setting[0] == len(new) - 1
        assert out.startswith(text.rstrip("\n"))
    assert out.endswith("\n") and "\r" not in out
    # the comments holding the same name are untouched
    assert [ln for ln in old if ln.lstrip().startswith("#")] == [ln for ln in new if ln.lstrip().startswith("#")]


def before_text_train(text: str) -> str:
    """The keys of [train] (tomllib), joined, to tell the presets that carry tokens_per_param."""
    import tomllib

    return " ".join(tomllib.loads(text).get("train", {}))


def test_with_tokens_per_param_twice_is_stable():
    text = PRESETS["gpu"]
    once = with_tokens_per_param(text, 50)
    assert with_tokens_per_param(once, 50) == once
    own = parse_plan(text).train.tokens_per_param
    assert with_tokens_per_param(once, own) == text  # the preset writes its value the same way


# --- the estimate and its fit --------------------------------------------------------------

def _plan(tpp: float, extra: str = ""):
    return parse_plan(f'name = "s"\n[train]\nseq_len = 128\nbatch_size = 4\ntokens_per_param = {tpp}\n'
                      + MODELS + extra)


def _expected_seconds(plan, step_s, tpp, workers, overlap=1.0):
    """The documented estimate, written out: steps from tokens, then sum or max(sum/overlap, busiest)."""
    per_step = plan.train.batch_size * plan.train.seq_len
    cost = {}
    for m in plan.models:
        tokens = m.tokens if m.tokens else math.ceil(tpp * m.estimated_params())
        cost[m.name] = step_s[m.name] * max(1, math.ceil(tokens / per_step))
    total = sum(cost.values())
    if workers == 1:
        return total
    groups = split_models(plan, plan.models, workers)
    assert 1 < len(groups) <= workers
    return max(total / overlap, max(sum(cost[m.name] for m in g) for g in groups))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("workers, overlap", [(1, 1.0), (2, 1.0), (3, 1.7), (4, 3.5), (6, 2.0)])
def test_estimate_seconds_is_the_documented_formula(seed, workers, overlap):
    rng = np.random.default_rng(seed)
    own = '\n[[model]]\nname = "fixed"\nwidth = 32\ndepth = 1\ntokens = 5000\n' if seed % 2 else ""
    plan = _plan(float(rng.integers(5, 60)), own)
    step_s = {m.name: float(rng.uniform(1e-3, 0.2)) for m in plan.models}
    for tpp in (1, 3.5, 17, plan.train.tokens_per_param):
        got = estimate_seconds(plan, step_s, tpp, workers, overlap)
        assert got == pytest.approx(_expected_seconds(plan, step_s, tpp, workers, overlap), rel=1e-12)
    if workers == 1:  # the plain sum, whatever the overlap
        assert estimate_seconds(plan, step_s, 9, 1, 5.0) == pytest.approx(
            sum(step_s[m.name] * steps_at(plan, m, 9) for m in plan.models), rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("workers, overlap", [(1, 1.0), (2, 1.0), (3, 2.5)])
def test_fit_tokens_per_param_is_the_largest_that_fits(seed, workers, overlap):
    rng = np.random.default_rng(100 + seed)
    hi = int(rng.integers(3, 120))
    plan = _plan(hi)
    step_s = {m.name: float(rng.uniform(1e-3, 0.05)) for m in plan.models}

    def est(t):
        return estimate_seconds(plan, step_s, t, workers, overlap)

    lo_s, hi_s = est(1), est(hi)
    assert lo_s < hi_s  # the search has something to do
    budgets = [float(b) for b in rng.uniform(lo_s, hi_s, size=6)] + [est(t) for t in rng.integers(1, hi, 3)]
    for budget in budgets:
        t = fit_tokens_per_param(plan, step_s, budget, workers, overlap)
        brute = max(k for k in range(1, hi + 1) if est(k) <= budget)
        assert t == brute and float(t).is_integer() and 1 <= t <= hi
        assert est(t) <= budget < est(t + 1)
    # fits already: the plan's own value, even when it is not whole
    frac = _plan(hi + 0.5)
    assert fit_tokens_per_param(frac, step_s, estimate_seconds(frac, step_s, hi + 0.5, workers, overlap),
                                workers, overlap) == hi + 0.5
    assert fit_tokens_per_param(plan, step_s, hi_s * 10, workers, overlap) == hi
    # nothing fits: 1
    assert fit_tokens_per_param(plan, step_s, lo_s / 2, workers, overlap) == 1


# --- the command ---------------------------------------------------------------------------

def test_main_names_a_bad_plan(capsys):
    assert main(["no-such-plan-xyz", "--budget-s", "10"]) == 2
    err = capsys.readouterr().err
    assert "no-such-plan-xyz" in err and "Traceback" not in err


@torch_needed
@pytest.mark.measure
def test_main_times_the_ci_preset_and_writes_a_plan(tmp_path):
    out = tmp_path / "sized.toml"
    res = subprocess.run([sys.executable, "-m", "sparsitylaws.lab.sizing", "ci", "--budget-s", "1000",
                          "--steps", "3", "--warmup", "1", "-o", str(out)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "SPARSITYLAWS_DEBUG": "1"})
    assert res.returncode == 0, res.stdout + res.stderr
    plan = parse_plan(PRESETS["ci"])
    lines = res.stdout.splitlines()
    for m in plan.models:
        mine = [ln for ln in lines if ln.startswith(f"# {m.name}: ")]
        assert len(mine) == 1 and " ms/step " in mine[0], res.stdout
        assert float(mine[0].split(": ")[1].split(" ms/step")[0]) > 0
    sized = parse_plan(out.read_text())
    # the ci models carry their own tokens: training does not depend on tokens_per_param,
    # so the plan's own value fits 1000 s and is kept
    assert sized.train.tokens_per_param == plan.train.tokens_per_param
    assert sized.models == plan.models
    assert "tokens_per_param = 190" in res.stdout and str(out) in res.stdout


def test_with_tokens_per_param_refuses_what_a_line_edit_would_get_wrong():
    """A [train] line inside a multi-line string, or an inline train table: refused, never
    edited wrongly; large values are written exactly (no %g rounding)."""
    from sparsitylaws.lab.plan import PlanError

    models = '[[model]]\nname = "a"\nwidth = 32\ndepth = 2\n'
    in_string = 'name = "t"\nnote = """\n[train]\ntokens_per_param = 5\n"""\n' + models
    inline = 'name = "t"\ntrain = { lr = 0.001 }\n' + models
    for text in (in_string, inline):
        with pytest.raises(PlanError, match="by hand"):
            with_tokens_per_param(text, 40)
    out = with_tokens_per_param('name = "t"\n' + models, 1234567)
    assert parse_plan(out).train.tokens_per_param == 1234567 and "1234567" in out


@torch_needed
@pytest.mark.measure
@pytest.mark.parametrize("extra, vocab", [("", 259), ('tokenizer = "bpe"\nvocab_size = 1024\n', 1024)])
def test_time_step_builds_the_model_with_the_plans_vocabulary(monkeypatch, extra, vocab):
    """A BPE plan's embedding and head are part of the step's cost: the timed model has the
    plan's vocabulary (a 4096 BPE made the ci model's step about 4x slower than bytes)."""
    import sparsitylaws.lab.models as models
    from sparsitylaws.lab.sizing import time_step

    seen = []
    real = models.build_model

    def spy(spec, vocab_size, *args, **kwargs):
        seen.append(vocab_size)
        return real(spec, vocab_size, *args, **kwargs)

    monkeypatch.setattr(models, "build_model", spy)
    plan = parse_plan(PRESETS["ci"].replace("[corpus]\n", "[corpus]\n" + extra))
    assert time_step(plan, plan.models[0], steps=1, warmup=1) > 0
    assert seen == [vocab]


# --- measuring counted (issue 22) ------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 3])
def test_measuring_is_added_per_model_and_does_not_shrink_with_the_budget(workers):
    rng = np.random.default_rng(7)
    plan = _plan(40)
    step_s = {m.name: float(rng.uniform(1e-3, 0.05)) for m in plan.models}
    meas = {m.name: float(rng.uniform(1, 30)) for m in plan.models}
    for tpp in (1, 10, 40):
        train_only = {m.name: step_s[m.name] * steps_at(plan, m, tpp) for m in plan.models}
        cost = {k: train_only[k] + meas[k] for k in train_only}
        if workers == 1:
            want = sum(cost.values())
        else:
            groups = split_models(plan, plan.models, workers)
            want = max(sum(cost.values()), max(sum(cost[m.name] for m in g) for g in groups))
        assert estimate_seconds(plan, step_s, tpp, workers, 1.0, meas) == pytest.approx(want, rel=1e-12)
    # a budget that measuring alone nearly fills leaves few tokens; one it exceeds: 1
    floor = estimate_seconds(plan, step_s, 1, workers, 1.0, meas)
    assert fit_tokens_per_param(plan, step_s, floor * 0.99, workers, 1.0, meas) == 1
    t = fit_tokens_per_param(plan, step_s, floor * 1.5, workers, 1.0, meas)
    assert t < fit_tokens_per_param(plan, step_s, floor * 1.5, workers, 1.0, None)


def test_measure_seconds_counts_checkpoints_metrics_and_the_joint_search():
    from sparsitylaws.lab.sizing import SEARCH_PASSES, MeasureTiming, measure_seconds

    t = MeasureTiming(load_s=0.5, stats_s=2.0, pass_s=3.0)
    for text, metrics in ((PRESETS["gpu"], 2), (PRESETS["cpu"], 2),  # the presets: no zero metric
                          (PRESETS["gpu"].replace("zero_for_relu = false", "zero_for_relu = true"), 3)):
        plan = parse_plan(text)
        relu = plan.models[0]
        ck, s = plan.train.checkpoints, plan.measure.stabilize_last
        # ppl-p, zero (ReLU) and the common CETT per checkpoint; the search on s checkpoints
        want = ck * (0.5 + 2.0 + metrics * 3.0) + s * (0.5 + 2.0 + SEARCH_PASSES * 3.0)
        assert measure_seconds(plan, relu, t) == pytest.approx(want)


def test_seeds_of_one_design_are_timed_once(monkeypatch):
    import sparsitylaws.lab.sizing as sizing

    calls = []
    monkeypatch.setattr(sizing, "time_step", lambda plan, m, *a: calls.append(("step", m.design_name)) or 0.1)
    monkeypatch.setattr(sizing, "time_measure",
                        lambda plan, m: calls.append(("measure", m.design_name)) or sizing.MeasureTiming(0.1, 0.2, 0.3))
    plan = parse_plan(PRESETS["gpu"])
    step_s, meas = sizing.size_plan(plan, log=lambda s: None)
    designs = {m.design_name for m in plan.models}
    assert len(calls) == 2 * len(designs) and set(step_s) == set(meas) == {m.name for m in plan.models}
    assert len(plan.models) == 3 * len(designs)
