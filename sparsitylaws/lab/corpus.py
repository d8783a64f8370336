"""The lab corpus: real offline text from the Python standard library, split by a fixed rule.

Documents are the standard library's ``.py`` sources (test packages and site-packages left
out) and the topics of ``pydoc_data.topics`` (its documentation).  A document goes to the
evaluation part when ``int(sha256(name)[:8], 16) % 1000 < eval_per_mille``; its name is the
path relative to the standard library (``pydoc:<topic>`` for pydoc topics), so the split
does not depend on where Python is installed.  The text is byte-level: token = UTF-8 byte
+ 3 (ByT5's byte tokenizer; ids 0-2 are pad, eos, unk), documents separated by a blank line.

``source = "stdlib+site-packages"`` adds the ``.py`` files of the installed packages
(``site:<path>``; about 240 MB with the ``measure`` extra), for plans that need more
tokens than the standard library's ~11 MB; that corpus depends on what is installed, so
``corpus.json`` records its document counts and hashes.

Outputs, in ``<out>/corpus/``: ``train.bin`` (uint8 bytes of the training part),
``eval.txt`` (the held-out text that ``measure`` reads: a slice of about
:data:`EVAL_SLICE` bytes from the middle of each held-out document, cut at line ends, in
order of the documents' hashes, so that the first few thousand evaluation tokens span
code and documentation from many modules rather than one file's header) and ``corpus.json`` (the rule,
counts and SHA-256 of both parts).  Building is deterministic for one Python version.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsitylaws.atomic import atomic_write_bytes, atomic_write_text
from sparsitylaws.lab.plan import CorpusSpec

SEPARATOR = b"\n\n"
EVAL_SLICE = 512


@dataclass(frozen=True)
class Corpus:
    """Paths and facts of a built corpus."""

    train_path: Path
    eval_path: Path
    info: dict

    def train_bytes(self) -> np.ndarray:
        """The training part as a read-only uint8 memory map."""
        return np.memmap(self.train_path, dtype=np.uint8, mode="r")


SKIP_DIRS = ("site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__")


def _py_files(root: Path, prefix: str) -> list[tuple[str, bytes]]:
    docs = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        if any(part in SKIP_DIRS for part in rel.parts[:-1]):
            continue
        try:
            data = f.read_bytes()
        except OSError:
            continue
        docs.append((prefix + rel.as_posix(), data.decode("utf-8", "replace").encode("utf-8")))
    return docs


def documents(source: str = "stdlib") -> list[tuple[str, bytes]]:
    """(name, UTF-8 text) of every document of ``source``, sorted by name."""
    import pydoc_data.topics as topics

    paths = sysconfig.get_paths()
    docs = _py_files(Path(paths["stdlib"]), "")
    if source == "stdlib+site-packages":
        for root in sorted({paths["purelib"], paths["platlib"]}):
            docs.extend(_py_files(Path(root), "site:"))
    for k in sorted(topics.topics):
        docs.append((f"pydoc:{k}", topics.topics[k].encode("utf-8")))
    docs.sort(key=lambda d: d[0])
    return docs


def is_eval(name: str, eval_per_mille: int) -> bool:
    """The fixed split rule: held out when sha256(name) mod 1000 < eval_per_mille."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 1000 < eval_per_mille


def eval_slice(data: bytes, size: int = EVAL_SLICE) -> bytes:
    """About ``size`` bytes from the middle of a document, from a line start to a line end."""
    if len(data) <= size:
        return data.strip()
    mid = len(data) // 2
    start = data.rfind(b"\n", 0, max(mid - size // 2, 1)) + 1
    end = data.find(b"\n", start + size)
    chunk = data[start:] if end < 0 else data[start:end]
    return chunk.decode("utf-8", "ignore").encode("utf-8").strip()


def build_corpus(spec: CorpusSpec, out: Path) -> Corpus:
    """Build (or reuse, when ``corpus.json`` exists with the same rule) the corpus in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "corpus.json"
    train_path, eval_path = out / "train.bin", out / "eval.txt"
    rule = {"source": spec.source, "eval_per_mille": spec.eval_per_mille,
            "max_train_bytes": spec.max_train_bytes, "eval_slice": EVAL_SLICE,
            "python": platform.python_version()}
    if meta_path.is_file() and train_path.is_file() and eval_path.is_file():
        info = json.loads(meta_path.read_text())
        if info.get("rule") == rule:
            return Corpus(train_path, eval_path, info)
    train, held, n_train, n_eval = [], [], 0, 0
    for name, data in documents(spec.source):
        if is_eval(name, spec.eval_per_mille):
            held.append((hashlib.sha256(name.encode()).hexdigest(), data))
            n_eval += 1
        else:
            train.append(data)
            n_train += 1
    train_blob = SEPARATOR.join(train)
    if spec.max_train_bytes:
        train_blob = train_blob[: spec.max_train_bytes]
    eval_blob = SEPARATOR.join(eval_slice(d) for _, d in sorted(held))
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
    atomic_write_text(meta_path, json.dumps(info, indent=1, sort_keys=True))
    return Corpus(train_path, eval_path, info)
