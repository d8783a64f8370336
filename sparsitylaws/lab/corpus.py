"""The lab corpus: real offline text from Python sources, split by a fixed rule, cleaned.

Documents are ``.py`` sources (test packages left out) and the topics of
``pydoc_data.topics`` (Python's reference documentation).  ``source`` says which sources:
``stdlib`` (the standard library, ~11 MB), ``stdlib+packages`` (plus the files that the
installed distributions named in ``packages`` list in their RECORD, with their docstrings:
about 140 MB with numpy, scipy, pandas, matplotlib, torch and transformers; their versions
and a SHA-256 per package go into ``corpus.json``), or ``stdlib+site-packages`` (every
installed package).  A document goes to the evaluation part when
``int(sha256(name)[:8], 16) % 1000 < eval_per_mille``; its name is the path relative to the
standard library or to site-packages (``site:<path>``; ``pydoc:<topic>`` for pydoc topics),
so the split does not depend on where Python is installed.  The text is byte-level: token =
UTF-8 byte + 3 (ByT5's byte tokenizer; ids 0-2 are pad, eos, unk), documents separated by a
blank line.

``clean = true`` (issue 22) makes the evaluation text worth its name:

* generated tables are left out of both parts (:func:`is_generated`: the standard
  library's ``encodings/*`` codec tables, colormaps, constant tables, serialized
  patterns), and so are vendored copies and exact duplicates of another document;
* a held-out document whose long lines mostly occur in the training text (a near
  duplicate: :data:`NEAR_DUPLICATE` of them) is left out of the evaluation text;
* every verbatim match of :data:`~sparsitylaws.lab.overlap.WINDOW` (128) bytes or more
  between the evaluation text and the training text is cut out of the evaluation text
  (:mod:`.overlap`), and the share left is measured again and recorded
  (``cleaning.eval_overlap_128``).

Outputs, in ``<out>/corpus/``: ``train.bin`` (uint8 bytes of the training part),
``eval.txt`` (the held-out text that ``measure`` reads: ``eval_slice`` bytes from the
middle of each held-out document, cut at line ends, in order of the documents' hashes, so
that the first evaluation tokens span code and documentation from many modules rather than
one file's header; at most ``eval_bytes``) and ``corpus.json`` (the rule, counts, package
versions, what cleaning removed, and SHA-256 of both parts).  Building is deterministic
for one Python version and one set of installed packages.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import re
import sysconfig
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparsitylaws.lab.overlap import (
    MIN_LINE,
    WINDOW,
    line_containment,
    line_hashes,
    overlap_fraction,
    remove_overlap,
)
from sparsitylaws.lab.plan import CorpusSpec, PlanError
from sparsitylaws.tables.atomic import atomic_write_bytes, atomic_write_text

SEPARATOR = b"\n\n"
BYTE_OFFSET = 3  # ByT5: 0 pad, 1 eos, 2 unk, then the 256 byte values
BPE_SPECIALS = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2 as in the byte tokenizer
EVAL_SLICE = 512


@dataclass(frozen=True)
class Corpus:
    """Paths and facts of a built corpus (and of its BPE tokenizer, when the plan trains one)."""

    train_path: Path
    eval_path: Path
    info: dict
    tokenizer_dir: Path | None = None
    ids_path: Path | None = None

    def train_bytes(self) -> np.ndarray:
        """The training part as a read-only uint8 memory map."""
        return np.memmap(self.train_path, dtype=np.uint8, mode="r")

    def train_ids(self) -> tuple[np.ndarray, int]:
        """(token array, offset to add): bytes + 3 for the byte tokenizer, BPE ids as stored."""
        if self.ids_path is None:
            return self.train_bytes(), BYTE_OFFSET
        return np.load(self.ids_path, mmap_mode="r"), 0

    def tokenizer(self) -> Any:
        """The tokenizer saved with every checkpoint."""
        if self.tokenizer_dir is None:
            from sparsitylaws.lab.models import byte_tokenizer

            return byte_tokenizer()
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.tokenizer_dir)

    def fingerprint(self) -> str:
        """What of the corpus determines trained weights: the training text (and the BPE)."""
        sha = self.info["sha256"]["train"]
        return sha if self.ids_path is None else f"{sha}+bpe:{self.info['bpe']['sha256']}"


SKIP_DIRS = ("site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__")
#: with ``clean``: vendored copies of other packages are left out too (they duplicate them)
CLEAN_SKIP_DIRS = SKIP_DIRS + ("testing", "_vendor", "vendor", "vendored", "_vendored")
#: a header that says the file was generated (codec tables, serialized patterns, ...)
GENERATED_MARK = re.compile(rb"(?i)(auto-?generated|generated (by|from|with|using)|do not edit|"
                            rb"this file (is|was) generated)")
NEAR_DUPLICATE = 0.5  # a held-out document with this share of its long lines in training is left out


def _py_files(root: Path, prefix: str, skip: tuple[str, ...] = SKIP_DIRS) -> list[tuple[str, bytes]]:
    docs = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        if any(part in skip for part in rel.parts[:-1]):
            continue
        try:
            data = f.read_bytes()
        except OSError:
            continue
        docs.append((prefix + rel.as_posix(), data.decode("utf-8", "replace").encode("utf-8")))
    return docs


def package_files(name: str, skip: tuple[str, ...] = CLEAN_SKIP_DIRS) -> tuple[list[tuple[str, bytes]], dict]:
    """The ``.py`` files an installed distribution's RECORD lists, as ``site:<path>`` documents,
    and its facts (version, documents, bytes, SHA-256 of the documents in name order)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise PlanError(f"corpus.packages: {name!r} is not installed here (pip install {name}, "
                        "or remove it from the plan)") from None
    docs = []
    for f in dist.files or []:
        if f.suffix != ".py" or any(part in skip for part in f.parts[:-1]):
            continue
        try:
            data = Path(dist.locate_file(f)).read_bytes()
        except OSError:
            continue
        docs.append(("site:" + f.as_posix(), data.decode("utf-8", "replace").encode("utf-8")))
    docs.sort(key=lambda d: d[0])
    sha = hashlib.sha256()
    for doc_name, data in docs:
        sha.update(doc_name.encode() + b"\0" + data + b"\0")
    return docs, {"version": dist.version, "documents": len(docs),
                  "bytes": sum(len(d) for _, d in docs), "sha256": sha.hexdigest()}


def documents(source: str = "stdlib", packages: Sequence[str] = (),
              clean: bool = False) -> tuple[list[tuple[str, bytes]], dict]:
    """(name, UTF-8 text) of every document of ``source``, sorted by name, and the facts of
    the packages it read (``stdlib+packages``: name -> version, documents, bytes, SHA-256)."""
    import pydoc_data.topics as topics

    paths = sysconfig.get_paths()
    skip = CLEAN_SKIP_DIRS if clean else SKIP_DIRS
    docs = _py_files(Path(paths["stdlib"]), "", skip)
    if clean:  # the pydoc topics' source: the same text as the pydoc:<topic> documents below
        docs = [d for d in docs if d[0] != "pydoc_data/topics.py"]
    facts: dict = {}
    if source == "stdlib+site-packages":
        for root in sorted({paths["purelib"], paths["platlib"]}):
            docs.extend(_py_files(Path(root), "site:", skip))
    elif source == "stdlib+packages":
        seen = set()
        for name in packages:
            pkg_docs, facts[name] = package_files(name, skip)
            docs.extend(d for d in pkg_docs if d[0] not in seen)  # two dists may list one file
            seen.update(n for n, _ in pkg_docs)
    for k in sorted(topics.topics):
        docs.append((f"pydoc:{k}", topics.topics[k].encode("utf-8")))
    docs.sort(key=lambda d: d[0])
    return docs, facts


def is_generated(data: bytes) -> bool:
    """A generated table rather than written text: a third of its characters are digits, it
    compresses more than 8x (repeated rows), or its header says it was generated and it
    leans that way (digits > 8% or compression > 5x).  Catches the standard library's
    ``encodings/*`` codec tables, colormap and constant tables, serialized patterns."""
    if len(data) < 64:
        return False
    nonspace = len(data) - sum(data.count(c) for c in (b" ", b"\n", b"\t", b"\r")) or 1
    digits = sum(data.count(bytes([c])) for c in b"0123456789") / nonspace
    ratio = len(data) / max(1, len(zlib.compress(data, 6)))
    marked = GENERATED_MARK.search(data[:3000]) is not None
    return digits > 0.25 or ratio > 8 or (marked and (digits > 0.08 or ratio > 5))


def is_eval(name: str, eval_per_mille: int) -> bool:
    """The fixed split rule: held out when sha256(name) mod 1000 < eval_per_mille."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 1000 < eval_per_mille


def eval_slice(data: bytes, size: int = EVAL_SLICE) -> bytes:
    """About ``size`` bytes from the middle of a document, from a line start to a line end
    (``size`` 0: the whole document)."""
    if size <= 0 or len(data) <= size:
        return data.strip()
    mid = len(data) // 2
    start = data.rfind(b"\n", 0, max(mid - size // 2, 1)) + 1
    end = data.find(b"\n", start + size)
    chunk = data[start:] if end < 0 else data[start:end]
    return chunk.decode("utf-8", "ignore").encode("utf-8").strip()


def _rule(spec: CorpusSpec) -> dict:
    rule = {"source": spec.source, "eval_per_mille": spec.eval_per_mille,
            "max_train_bytes": spec.max_train_bytes, "eval_slice": spec.eval_slice,
            "python": platform.python_version()}
    # keys added by issue 22 enter the rule only when set, so older corpus folders stay valid
    if spec.packages:
        rule["packages"] = list(spec.packages)
    if spec.eval_bytes:
        rule["eval_bytes"] = spec.eval_bytes
    if spec.clean:
        rule["clean"] = {"near_duplicate": NEAR_DUPLICATE, "verbatim_window": WINDOW,
                         "min_line": MIN_LINE}
    return rule


def build_corpus(spec: CorpusSpec, out: Path) -> Corpus:
    """Build (or reuse, when ``corpus.json`` exists with the same rule) the corpus in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "corpus.json"
    train_path, eval_path = out / "train.bin", out / "eval.txt"
    rule = _rule(spec)
    if meta_path.is_file() and train_path.is_file() and eval_path.is_file():
        info = json.loads(meta_path.read_text())
        if info.get("rule") == rule:
            return _with_tokenizer(spec, Corpus(train_path, eval_path, info), out)
    docs, packages = documents(spec.source, spec.packages, spec.clean)
    cleaning: dict = {}
    if spec.clean:
        docs, cleaning = _drop_generated_and_duplicates(docs)
    train, held, n_train, n_eval = [], [], 0, 0
    for name, data in docs:
        if is_eval(name, spec.eval_per_mille):
            held.append((hashlib.sha256(name.encode()).hexdigest(), data))
            n_eval += 1
        else:
            train.append(data)
            n_train += 1
    train_blob = SEPARATOR.join(train)
    if spec.max_train_bytes:
        train_blob = train_blob[: spec.max_train_bytes]
    held.sort()
    if spec.clean:
        eval_blob, more = _clean_eval(held, train, train_blob, spec)
        cleaning.update(more)
    else:
        eval_blob = SEPARATOR.join(eval_slice(d, spec.eval_slice) for _, d in held)
        if spec.eval_bytes:
            eval_blob = _cut(eval_blob, spec.eval_bytes)
    atomic_write_bytes(train_path, train_blob)
    atomic_write_text(eval_path, eval_blob.decode("utf-8"))
    info = {
        "rule": rule,
        "documents": {"train": n_train, "eval": n_eval},
        "bytes": {"train": len(train_blob), "eval": len(eval_blob)},
        "sha256": {"train": hashlib.sha256(train_blob).hexdigest(),
                   "eval": hashlib.sha256(eval_blob).hexdigest()},
        "tokenizer": "byte-level (ByT5Tokenizer, extra_ids=0): token = UTF-8 byte + 3",
    }
    if packages:
        info["packages"] = packages
    if spec.clean:
        info["cleaning"] = cleaning
    atomic_write_text(meta_path, json.dumps(info, indent=1, sort_keys=True))
    return _with_tokenizer(spec, Corpus(train_path, eval_path, info), out)


def _drop_generated_and_duplicates(docs: list[tuple[str, bytes]]) -> tuple[list, dict]:
    """Leave out generated tables and exact copies (the first name in sorted order stays)."""
    kept, seen, generated, duplicates = [], set(), [], 0
    for name, data in docs:
        if is_generated(data):
            generated.append(name)
            continue
        key = hashlib.sha256(data.strip()).digest()
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        kept.append((name, data))
    return kept, {"generated_documents": len(generated), "generated_examples": generated[:12],
                  "duplicate_documents": duplicates}


def _cut(blob: bytes, size: int) -> bytes:
    """The first ``size`` bytes of ``blob`` or fewer, ending at a line end."""
    if len(blob) <= size:
        return blob
    end = blob.rfind(b"\n", 0, size + 1)
    return blob[: end if end > 0 else size].decode("utf-8", "ignore").encode("utf-8")


def _clean_eval(held: list[tuple[str, bytes]], train_docs: list[bytes], train_blob: bytes,
                spec: CorpusSpec) -> tuple[bytes, dict]:
    """The evaluation text from held-out documents (in hash order), with near duplicates of
    training documents left out and every verbatim match of :data:`WINDOW` bytes or more with
    the training text cut out; then capped at ``eval_bytes``."""
    lines = line_hashes(train_docs)
    slices, near = [], 0
    for _, data in held:
        if line_containment(data, lines) >= NEAR_DUPLICATE:
            near += 1
            continue
        piece = eval_slice(data, spec.eval_slice)
        if piece:
            slices.append(piece)
    candidate = SEPARATOR.join(slices)
    train_arr = np.frombuffer(train_blob, dtype=np.uint8)
    text, removed = remove_overlap(candidate, train_arr, WINDOW, sep=SEPARATOR)
    text = text.decode("utf-8", "ignore").encode("utf-8")  # cuts may split a character
    if spec.eval_bytes:
        text = _cut(text, spec.eval_bytes)
    left = overlap_fraction(text, train_arr, WINDOW)
    return text, {"near_duplicate_documents": near, "eval_candidate_bytes": len(candidate),
                  "verbatim_bytes_removed": removed,
                  f"eval_overlap_{WINDOW}": left}


def _with_tokenizer(spec: CorpusSpec, corpus: Corpus, out: Path) -> Corpus:
    """For ``tokenizer = "bpe"``: train (or reuse) a byte-level BPE on the training part
    (Hugging Face ``tokenizers``) and store the training part's token ids."""
    if spec.tokenizer == "bytes":
        return corpus
    tdir, ids_path, meta = out / f"bpe-{spec.vocab_size}", out / f"train-bpe-{spec.vocab_size}.npy", None
    meta_path = tdir / "bpe.json"
    if meta_path.is_file() and ids_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("train_sha256") != corpus.info["sha256"]["train"]:
            meta = None
    if meta is None:
        meta = _train_bpe(corpus, spec.vocab_size, tdir, ids_path)
        atomic_write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True))
    info = {**corpus.info, "bpe": meta,
            "tokenizer": f"byte-level BPE trained on the training part, vocabulary {meta['vocab']}"}
    return Corpus(corpus.train_path, corpus.eval_path, info, tokenizer_dir=tdir, ids_path=ids_path)


def _train_bpe(corpus: Corpus, vocab_size: int, tdir: Path, ids_path: Path) -> dict:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    text = bytes(corpus.train_bytes()).decode("utf-8", "replace")
    docs = text.split(SEPARATOR.decode())
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(docs, vocab_size=vocab_size, min_frequency=2,
                            special_tokens=BPE_SPECIALS, show_progress=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, pad_token="<pad>",
                                   eos_token="</s>", unk_token="<unk>")
    tdir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(tdir)
    sep = fast(SEPARATOR.decode(), add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    for i, enc in enumerate(fast(docs, add_special_tokens=False)["input_ids"]):
        ids.extend((sep if i else []) + enc)
    arr = np.asarray(ids, dtype=np.uint16)
    buf = io.BytesIO()
    np.save(buf, arr)
    atomic_write_bytes(ids_path, buf.getvalue())
    return {"vocab": len(fast), "tokens": int(arr.size), "bytes_per_token": len(text.encode()) / arr.size,
            "train_sha256": corpus.info["sha256"]["train"],
            "sha256": hashlib.sha256(arr.tobytes() + (tdir / "tokenizer.json").read_bytes()).hexdigest()}
