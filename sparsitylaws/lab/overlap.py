"""Verbatim overlap and near duplicates between the lab's training and evaluation text.

An evaluation text that the model has trained on measures memory, not the model: the
``cpu`` table of issue 22 had 13.7% of its first 16k evaluation bytes inside verbatim
matches of 128 bytes or more with the training text.  This module finds such matches
exactly and cheaply, so that :mod:`.corpus` can cut them out and record what is left:

* :func:`covered_windows`: for every window of ``window`` bytes of the evaluation text,
  whether it occurs anywhere in the training text.  Every window of both texts is hashed
  (a polynomial hash over 8-byte words, vectorized), the training text in chunks against
  the evaluation text's sorted hashes, and every hit is then checked byte for byte, so a
  hash collision cannot mark a window.
* :func:`covered_bytes` / :func:`overlap_fraction`: the bytes inside such windows (the
  share of the evaluation text that sits in a verbatim match of ``window`` bytes or more).
* :func:`remove_overlap`: the evaluation text with those bytes cut out.
* :func:`line_containment`: the share of a document's long lines that occur in the
  training text, a near-duplicate score that also catches copies with edits.
"""

from __future__ import annotations

import numpy as np

WINDOW = 128  # bytes: the overlap the lab removes and reports (issue 22)
MIN_LINE = 32  # bytes: shorter lines ("return None") are common to unrelated files
_Q = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the window hash


def _words(data: np.ndarray) -> np.ndarray:
    """The little-endian 8-byte word starting at every byte offset (len(data) - 7 words)."""
    m = data.size - 7
    words = np.empty(max(m, 0), np.uint64)
    buf = data.tobytes()
    for j in range(8):
        cnt = (data.size - j) // 8
        if cnt > 0:
            words[j::8][:cnt] = np.frombuffer(buf, dtype="<u8", count=cnt, offset=j)
    return words


def window_hashes(data: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """A 64-bit hash of every ``window``-byte window of ``data`` (uint8; window % 8 == 0)."""
    if window <= 0 or window % 8:
        raise ValueError(f"window must be a positive multiple of 8, got {window}")
    data = np.ascontiguousarray(data, dtype=np.uint8)
    n = data.size - window + 1
    if n <= 0:
        return np.zeros(0, np.uint64)
    words = _words(data)
    if window == 8:
        return words[:n]
    with np.errstate(over="ignore"):
        h = words[:n] * _Q
        np.add(h, words[8:8 + n], out=h)
        for i in range(2, window // 8):
            np.multiply(h, _Q, out=h)
            np.add(h, words[8 * i:8 * i + n], out=h)
    return h


def _as_array(data: bytes | np.ndarray) -> np.ndarray:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(data), dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)


def covered_windows(eval_text: bytes | np.ndarray, train: bytes | np.ndarray,
                    window: int = WINDOW, chunk: int = 1 << 23) -> np.ndarray:
    """For each window start of ``eval_text``: does that window occur verbatim in ``train``?

    Exact: hash hits are confirmed byte for byte against the first training occurrence
    found (a 64-bit collision that hides a true occurrence elsewhere is the only miss,
    about 1e-5 expected over 1e6 x 1e8 window pairs).
    """
    ev = _as_array(eval_text)
    tr = _as_array(train)
    eh = window_hashes(ev, window)
    if eh.size == 0 or tr.size < window:
        return np.zeros(eh.size, bool)
    uniq, inverse = np.unique(eh, return_inverse=True)
    where = np.full(uniq.size, -1, np.int64)  # first training position of each hash
    # a table of the hashes' low bits screens the training windows before the exact lookup
    bits = max(16, min(26, int(uniq.size).bit_length() + 6))
    low = np.uint64((1 << bits) - 1)
    table = np.zeros(1 << bits, bool)
    table[(uniq & low).astype(np.int64)] = True
    step = max(chunk, window)
    for start in range(0, tr.size - window + 1, step):
        part = tr[start:start + step + window - 1]
        th = window_hashes(part, window)
        maybe = np.flatnonzero(table[(th & low).astype(np.int64)])
        if not maybe.size:
            continue
        idx = np.searchsorted(uniq, th[maybe])
        idx[idx == uniq.size] = 0
        sel = uniq[idx] == th[maybe]
        hit = maybe[sel]
        if hit.size:
            k = idx[sel]
            new = where[k] < 0
            where[k[new]] = start + hit[new]  # np.unique order: the first hit of a hash wins
            # (later duplicates in this chunk assign the same k again; the values are all
            # true occurrences, so any of them serves for the byte check)
    pos = where[inverse]
    found = np.flatnonzero(pos >= 0)
    ok = np.zeros(eh.size, bool)
    if found.size:
        offs = np.arange(window)
        same = (ev[found[:, None] + offs[None, :]] == tr[pos[found][:, None] + offs[None, :]]).all(axis=1)
        ok[found[same]] = True
    return ok


def covered_bytes(eval_text: bytes | np.ndarray, train: bytes | np.ndarray,
                  window: int = WINDOW) -> np.ndarray:
    """Per byte of ``eval_text``: inside a verbatim match of ``window`` bytes or more."""
    ev = _as_array(eval_text)
    starts = covered_windows(ev, train, window)
    cover = np.zeros(ev.size + 1, np.int64)
    idx = np.flatnonzero(starts)
    np.add.at(cover, idx, 1)
    np.add.at(cover, idx + window, -1)
    return np.cumsum(cover)[:ev.size] > 0


def overlap_fraction(eval_text: bytes | np.ndarray, train: bytes | np.ndarray,
                     window: int = WINDOW) -> float:
    """Share of the evaluation bytes inside verbatim matches of ``window`` bytes or more."""
    ev = _as_array(eval_text)
    if ev.size == 0:
        return 0.0
    return float(covered_bytes(ev, train, window).mean())


def remove_overlap(eval_text: bytes, train: bytes | np.ndarray, window: int = WINDOW,
                   min_piece: int = 64, sep: bytes = b"\n\n") -> tuple[bytes, int]:
    """``eval_text`` with every verbatim match of ``window`` bytes or more cut out.

    The pieces between cuts are joined by ``sep``; pieces shorter than ``min_piece``
    bytes are dropped.  Returns (text, bytes removed).
    """
    ev = _as_array(eval_text)
    cov = covered_bytes(ev, train, window)
    if not cov.any():
        return eval_text, 0
    edges = np.flatnonzero(np.diff(np.concatenate([[True], cov, [True]]).astype(np.int8)))
    pieces = [eval_text[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    kept = [p.strip(b"\n") for p in pieces]
    kept = [p for p in kept if len(p) >= min_piece]
    out = sep.join(kept)
    return out, len(eval_text) - sum(len(p) for p in kept)


def long_lines(doc: bytes, min_len: int = MIN_LINE) -> list[bytes]:
    """The document's lines of at least ``min_len`` bytes once stripped of indentation."""
    return [s for s in (ln.strip() for ln in doc.split(b"\n")) if len(s) >= min_len]


def line_hashes(docs: list[bytes], min_len: int = MIN_LINE) -> np.ndarray:
    """Sorted unique hashes of the long lines of ``docs`` (a set, compact for 1e6+ lines)."""
    import hashlib

    hs = [int.from_bytes(hashlib.blake2b(s, digest_size=8).digest(), "little")
          for d in docs for s in long_lines(d, min_len)]
    return np.unique(np.asarray(hs, dtype=np.uint64))


def line_containment(doc: bytes, train_lines: np.ndarray, min_len: int = MIN_LINE) -> float:
    """Share of ``doc``'s long lines that occur in the training text (0 when it has none)."""
    import hashlib

    lines = long_lines(doc, min_len)
    if not lines or train_lines.size == 0:
        return 0.0
    h = np.asarray([int.from_bytes(hashlib.blake2b(s, digest_size=8).digest(), "little")
                    for s in lines], dtype=np.uint64)
    idx = np.searchsorted(train_lines, h)
    idx[idx == train_lines.size] = 0
    return float((train_lines[idx] == h).mean())
