"""The lab as an instrument (issue 22): seeds in plans, a learning rate per width, a clean
evaluation text (no generated tables, no near duplicates, no 128-byte verbatim overlap with
the training text), and manifest counts that add up over invocations."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict

import numpy as np
import pytest
from conftest import torch_needed
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsitylaws.lab.overlap import (
    covered_bytes,
    covered_windows,
    line_containment,
    line_hashes,
    long_lines,
    overlap_fraction,
    remove_overlap,
)
from sparsitylaws.lab.plan import PlanError, TrainSpec, parse_plan

BASE = 'name = "t"\n{top}\n[[model]]\nname = "a"\nwidth = 32\ndepth = 2\n{model}\n'


def _plan(top: str = "", model: str = "", more: str = ""):
    return parse_plan(BASE.format(top=top, model=model) + more, where="p.toml")


# --- seeds ---------------------------------------------------------------------------------

def test_plan_seeds_make_one_run_per_seed():
    p = _plan("seeds = [0, 1, 2]", more='[[model]]\nname = "b"\nwidth = 32\ndepth = 1\nseed = 7\n')
    assert [m.name for m in p.models] == ["a-s0", "a-s1", "a-s2", "b"]
    assert [p.seed_of(m) for m in p.models] == [0, 1, 2, 7]
    assert [m.design_name for m in p.models] == ["a", "a", "a", "b"]
    assert [p.run_name(m) for m in p.models][:2] == ["t-a-s0", "t-a-s1"]
    assert [m.name for m in p.select(["a"])] == ["a-s0", "a-s1", "a-s2"]
    assert [m.name for m in p.select(["a-s1", "b"])] == ["a-s1", "b"]
    with pytest.raises(PlanError, match="no model named 'c'"):
        p.select(["c"])


def test_model_seeds_override_the_plans():
    p = _plan("seeds = [0, 1]", model="seeds = [5, 9]")
    assert [(m.name, m.seed) for m in p.models] == [("a-s5", 5), ("a-s9", 9)]


@pytest.mark.parametrize("top, model, needle", [
    ("seeds = [0, 0]", "", "listed twice"),
    ("seeds = []", "", "list of whole numbers"),
    ("seeds = [-1]", "", "list of whole numbers"),
    ("", "seeds = [1]\nseed = 2", "seed or seeds"),
    ("seeds = [0, 1]", "", None),
])
def test_bad_seeds_name_the_key(top, model, needle):
    if needle is None:
        _plan(top, model)
        return
    with pytest.raises(PlanError, match=needle):
        _plan(top, model)


@torch_needed
def test_fingerprint_of_a_plan_without_the_new_keys_is_unchanged():
    """Runs trained before issue 22 keep their fingerprint (and resume): the new keys at
    their defaults are left out of the hash, as before they existed."""
    from sparsitylaws.lab.train import fingerprint

    p = _plan()
    m, t = p.models[0], p.train
    model = {k: v for k, v in asdict(m).items() if k not in ("batch_size", "design")}
    train = {k: v for k, v in asdict(t).items() if k != "lr_width_ref"}
    old = hashlib.sha256(json.dumps({"model": model, "train": train, "seed": 0, "corpus": "x"},
                                    sort_keys=True).encode()).hexdigest()[:16]
    assert fingerprint(m, t, 0, "x") == old
    seeded = _plan("seeds = [0, 1]").models
    assert fingerprint(seeded[0], t, 0, "x") != fingerprint(seeded[1], t, 1, "x")


# --- learning rate per width ---------------------------------------------------------------

@torch_needed
@pytest.mark.parametrize("width", [32, 64, 128])
def test_mup_style_lr_and_init_scale_with_width(width):
    import torch

    from sparsitylaws.lab.models import build_model
    from sparsitylaws.lab.plan import ModelSpec
    from sparsitylaws.lab.train import param_groups, rescale_init

    spec = ModelSpec(name="m", width=width, depth=2, head_dim=16)
    t = TrainSpec(lr=3e-3, lr_width_ref=64, init_std=0.02)
    torch.manual_seed(0)
    model = build_model(spec, 259, 64, t.init_std)
    rescale_init(model, spec, t)
    hidden, rest = param_groups(model, spec, t)
    assert hidden["lr"] == pytest.approx(3e-3 * 64 / width) and rest["lr"] == 3e-3
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim == 2 and "embed" not in names[id(p)] for p in hidden["params"])
    assert any("embed" in names[id(p)] for p in rest["params"])
    w = torch.cat([p.detach().flatten() for p in hidden["params"]])
    assert float(w.std()) == pytest.approx(0.02 * math.sqrt(64 / width), rel=0.05)
    off = param_groups(model, spec, TrainSpec(lr=3e-3))
    assert off[0]["lr"] == off[1]["lr"] == 3e-3


# --- verbatim overlap and near duplicates: against brute force ------------------------------

def _brute_windows(ev: bytes, tr: bytes, w: int) -> np.ndarray:
    return np.array([tr.find(ev[i:i + w]) >= 0 for i in range(len(ev) - w + 1)], bool)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([8, 16, 32]), st.integers(2, 6))
def test_covered_windows_match_brute_force(seed, window, alphabet):
    rng = np.random.default_rng(seed)
    tr = bytes(rng.integers(97, 97 + alphabet, 3000, dtype=np.uint8))
    ev = bytearray(rng.integers(97, 97 + alphabet, 600, dtype=np.uint8))
    a, b = sorted(rng.integers(0, 600, 2))
    s = int(rng.integers(0, 3000 - (b - a)))
    ev[a:b] = tr[s:s + (b - a)]  # a planted copy
    ev = bytes(ev)
    got = covered_windows(ev, tr, window, chunk=int(rng.integers(window, 1000)))
    assert np.array_equal(got, _brute_windows(ev, tr, window))


def test_covered_bytes_and_removal():
    rng = np.random.default_rng(1)
    tr = bytes(rng.integers(0, 256, 50_000, dtype=np.uint8))
    ev = bytearray(rng.integers(0, 256, 4_000, dtype=np.uint8))
    ev[1000:1300] = tr[20_000:20_300]  # 300 bytes copied: covered
    ev[3000:3100] = tr[100:200]  # 100 bytes: shorter than the window, not covered
    ev = bytes(ev)
    cov = covered_bytes(ev, tr, 128)
    assert cov[1000:1300].all() and cov.sum() == 300
    assert overlap_fraction(ev, tr, 128) == pytest.approx(300 / 4000)
    out, removed = remove_overlap(ev, tr, 128, min_piece=1, sep=b"")
    assert removed == 300 and out == ev[:1000] + ev[1300:]
    assert overlap_fraction(out, tr, 128) == 0.0


def test_line_containment_counts_long_lines():
    train = [b"def f():\n    return some_long_function_name(argument_one, argument_two)\n"]
    lines = line_hashes(train)
    doc = (b"    return some_long_function_name(argument_one, argument_two)\n"
           b"x = 1\n"  # short: not counted
           b"    value = another_function_entirely(with_different, arguments_here)\n")
    assert long_lines(doc) == [b"return some_long_function_name(argument_one, argument_two)",
                               b"value = another_function_entirely(with_different, arguments_here)"]
    assert line_containment(doc, lines) == 0.5
    assert line_containment(b"x = 1\n", lines) == 0.0


def test_generated_tables_are_recognized():
    from sparsitylaws.lab.corpus import is_generated

    codec = (b'""" Python Character Mapping Codec generated from CP1252.TXT with gencodec.py. """\n'
             + b"".join(b"    '\\x%02x'     #  0x%02X -> CONTROL\n" % (i, i) for i in range(200)))
    assert is_generated(codec)
    numbers = b"TABLE = [\n" + b"".join(b"    %d, %d, %d,\n" % (i, i * 7, i * 13) for i in range(300)) + b"]\n"
    assert is_generated(numbers)
    code = b"".join(b"def f%d(x):\n    return g(x) + h(x, %d)\n\n" % (i, i) for i in range(5))
    assert not is_generated(code)


@torch_needed
def test_clean_corpus_keeps_train_and_eval_apart(tmp_path):
    """The ci preset's corpus: no generated tables, no pydoc topics twice, and an evaluation
    text whose 128-byte windows do not occur in the training text, checked independently
    by exact search (bytes.find) at 400 random positions."""
    from sparsitylaws.lab.corpus import build_corpus, is_generated
    from sparsitylaws.lab.plan import load_plan

    spec = load_plan("ci").corpus
    c = build_corpus(spec, tmp_path / "corpus")
    train = c.train_path.read_bytes()
    ev = c.eval_path.read_bytes()
    info = c.info["cleaning"]
    assert info["generated_documents"] > 10 and info["eval_overlap_128"] < 0.01
    assert any(n.startswith("encodings/cp") for n in info["generated_examples"])
    assert 0 < len(ev) <= spec.eval_bytes
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(ev) - 128, 400)
    hits = sum(train.find(ev[i:i + 128]) >= 0 for i in starts)
    assert hits <= 2  # < 1% of windows (binomial: 0 expected; 2 allows a rare seam)
    assert not is_generated(ev)
    assert b"Python Character Mapping Codec" not in train  # the codec tables are gone
    again = build_corpus(spec, tmp_path / "corpus")  # reused, same facts
    assert again.info == c.info


# --- manifest -------------------------------------------------------------------------------

def test_manifest_rows_add_up_over_invocations(tmp_path):
    from sparsitylaws.lab.pipeline import Manifest

    plan = _plan()
    path = tmp_path / "m.json"
    Manifest(path, plan).record("measure", "a", 10.0, rows=38, accumulate=True)
    Manifest(path, plan).record("measure", "a", 5.0, rows=2, accumulate=True)  # a resumed run
    Manifest(path, plan).record("train", "a", 7.0, steps=3)
    Manifest(path, plan).record("train", "a", 8.0, steps=3)  # not accumulated: replaced
    st_ = json.loads(path.read_text())["stages"]
    assert st_["measure"]["a"] == {"wall_s": 15.0, "rows": 40}
    assert st_["train"]["a"] == {"wall_s": 8.0, "steps": 3}
