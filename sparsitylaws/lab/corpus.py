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
import io
import json
import platform
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparsitylaws.lab.plan import CorpusSpec
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
            return _with_tokenizer(spec, Corpus(train_path, eval_path, info), out)
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
    return _with_tokenizer(spec, Corpus(train_path, eval_path, info), out)


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
