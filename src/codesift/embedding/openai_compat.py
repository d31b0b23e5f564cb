"""Embeddings from any server that speaks OpenAI's ``POST /v1/embeddings``.

OpenAI itself, Ollama, vLLM, text-embeddings-inference, LM Studio and the llama.cpp
server all do. Specs::

    openai:MODEL                      # https://api.openai.com/v1, key from $OPENAI_API_KEY
    openai:MODEL@http://HOST:PORT/v1  # any compatible server
    ollama:MODEL                      # a local Ollama: http://127.0.0.1:11434/v1

This module does one call well and classifies how it failed; the pipeline owns the
policy (per-call deadline, retries with backoff and jitter, the circuit breaker, see
:mod:`codesift.pipeline.retry`). Every failure is an :class:`EmbedderCallError` that
names the server's host and the HTTP status, says whether a retry can help, and
carries ``Retry-After``. A response with the wrong count, the wrong dimension, a
non-number, NaN or malformed JSON is such an error too: nothing from it is stored.

The API key is read from an environment variable (``$OPENAI_API_KEY`` or the one
``--api-key-env`` names); only that variable's *name* is ever stored or printed, and
every message built from a server's answer has the key scrubbed out of it.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import os
import random
import time
import weakref
from urllib.parse import urlsplit

import numpy as np

from codesift.errors import ConfigError, EmbedderCallError

from .spec import Spec

log = logging.getLogger("codesift.embedding")

OPENAI_BASE_URL = "https://api.openai.com/v1"
OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
#: Texts per request: TEI's default ``--max-client-batch-size`` is 32 (OpenAI allows 2048).
DEFAULT_BATCH_TEXTS = 32
#: Estimated tokens per request: half of TEI's default ``--max-batch-tokens`` (16384),
#: since the estimate is not the server's tokenizer.
DEFAULT_BATCH_TOKENS = 8192
#: Chunks are sized to this many (estimated) tokens: 512 is what BERT-sized server models
#: (bge, gte, nomic via TEI) accept per text; larger models simply see shorter chunks.
DEFAULT_MAX_TOKENS = 512
#: Per-phase HTTP deadlines. ``read`` is the one a slow model hits; ``timeout=`` sets it.
DEFAULT_READ_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 30.0
POOL_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 8
#: The dimension probe at load time retries a busy server a little, never for long.
PROBE_ATTEMPTS = 3
PROBE_RETRY_AFTER_MAX_S = 10.0
PROBE_TEXT = "codesift dimension probe"
#: HTTP statuses a retry can fix.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504}) | frozenset(range(520, 530))
OPTIONS = ("key_env", "batch_texts", "batch_tokens", "max_tokens", "dimensions", "timeout",
           "query_prefix", "document_prefix")


def prefix_tag(document_prefix: str) -> str:
    """A short, stable tag for a document prefix: different prefixes, different vectors."""
    if not document_prefix:
        return ""
    return "+doc" + hashlib.sha256(document_prefix.encode("utf-8")).hexdigest()[:8]


def _split_model_url(spec: Spec, default_url: str) -> tuple[str, str]:
    body = spec.body
    at = max(body.rfind("@http://"), body.rfind("@https://"))
    if at >= 0:
        model, url = body[:at], body[at + 1:]
    elif "@" in body:
        raise ConfigError(f"embedder {spec.text!r}: the base URL after @ must start with http:// or https://",
                          stage="embed")
    else:
        model, url = body, default_url
    model = model.strip()
    if not model:
        raise ConfigError(f"embedder {spec.text!r}: expected {spec.kind}:MODEL[@BASE_URL], "
                          "e.g. openai:text-embedding-3-small or ollama:nomic-embed-text", stage="embed")
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ConfigError(f"embedder {spec.kind}:{model}: do not put credentials in the base URL (it is stored "
                          "in the index); put the key in an environment variable and name it with --api-key-env",
                          stage="embed")
    if not parts.hostname:
        raise ConfigError(f"embedder {spec.text!r}: base URL {url!r} has no host", stage="embed")
    return model, url.rstrip("/")


def load_openai(spec: Spec, *, transport=None) -> "OpenAIEmbedder":
    """Build the embedder for an ``openai:`` or ``ollama:`` spec and probe its dimension."""
    spec.check_options(OPTIONS)
    model, url = _split_model_url(spec, OLLAMA_BASE_URL if spec.kind == "ollama" else OPENAI_BASE_URL)
    key_env = spec.option("key_env") or DEFAULT_KEY_ENV
    key = os.environ.get(key_env) or None
    if key is None and spec.option("key_env"):
        raise ConfigError(f"embedder {spec.kind}:{model}: the environment variable {key_env} "
                          "(--api-key-env) is not set", stage="embed")
    host = urlsplit(url).netloc
    if key is None and urlsplit(url).hostname == "api.openai.com":
        raise ConfigError(f"embedder {spec.kind}:{model}: OpenAI needs an API key; set {key_env} "
                          "(or name another variable with --api-key-env)", stage="embed")
    return OpenAIEmbedder(
        model=model, base_url=url, host=host, key=key,
        batch_texts=spec.int_option("batch_texts", DEFAULT_BATCH_TEXTS),
        batch_tokens=spec.int_option("batch_tokens", DEFAULT_BATCH_TOKENS),
        max_tokens=spec.int_option("max_tokens", DEFAULT_MAX_TOKENS, minimum=16),
        dimensions=spec.int_option("dimensions", None),
        timeout_s=spec.float_option("timeout", DEFAULT_READ_TIMEOUT_S),
        query_prefix=spec.option("query_prefix", ""),
        document_prefix=spec.option("document_prefix", ""),
        transport=transport,
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class OpenAIEmbedder:
    """An OpenAI-compatible embedding server, with pooled connections.

    ``name`` is ``openai:MODEL@HOST[:PORT]`` (plus a tag when a document prefix is set):
    the same model on another server, or another model, is another embedder, and an
    index built with one refuses the other without ``--full``.
    """

    def __init__(self, *, model: str, base_url: str, host: str, key: str | None, batch_texts: int,
                 batch_tokens: int, max_tokens: int, dimensions: int | None, timeout_s: float,
                 query_prefix: str = "", document_prefix: str = "", transport=None) -> None:
        import httpx2 as httpx

        self._httpx = httpx
        self.model = model
        self.base_url = base_url
        self.host = host
        self.batch_texts = batch_texts
        self.batch_tokens = batch_tokens
        self.max_tokens: int | None = max_tokens
        self.dimensions = dimensions
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self._secret = key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(connect=min(CONNECT_TIMEOUT_S, timeout_s), read=timeout_s,
                                  write=min(WRITE_TIMEOUT_S, timeout_s), pool=POOL_TIMEOUT_S),
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS // 2),
            follow_redirects=False,
            **({"transport": transport} if transport is not None else {}),
        )
        # Closed when this embedder is dropped or the interpreter exits, whichever is first.
        self._finalizer = weakref.finalize(self, self._client.close)
        self.dim = 0
        try:
            self.dim = self._probe()
        except BaseException:
            self.close()
            raise
        self.name = f"openai:{model}@{host}{prefix_tag(document_prefix)}"

    # -- protocol -------------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        return self._embed_all([self.document_prefix + t for t in texts] if self.document_prefix else list(texts))

    def embed_query(self, texts: list[str]) -> np.ndarray:
        return self._embed_all([self.query_prefix + t for t in texts] if self.query_prefix else list(texts))

    def close(self) -> None:
        """Close the pooled connections (also done when the embedder is garbage collected)."""
        self._finalizer()

    # -- internals --------------------------------------------------------------------
    def _embed_all(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._post(group) for group in self._groups(texts)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _groups(self, texts: list[str]) -> list[list[str]]:
        """Consecutive requests within the server's limits: texts and estimated tokens per call."""
        from .registry import estimate_tokens

        groups: list[list[str]] = []
        current: list[str] = []
        tokens = 0
        for text, n in zip(texts, estimate_tokens(texts)):
            if current and (len(current) >= self.batch_texts or tokens + n > self.batch_tokens):
                groups.append(current)
                current, tokens = [], 0
            current.append(text)
            tokens += n
        if current:
            groups.append(current)
        return groups

    def _redact(self, text: str) -> str:
        if self._secret and self._secret in text:
            text = text.replace(self._secret, "[redacted]")
        return text

    def _fail(self, what: str, *, retryable: bool, retry_after_s: float | None = None) -> EmbedderCallError:
        return EmbedderCallError(self._redact(f"embedding server {self.host}: {what}"), stage="embed",
                                 retryable=retryable, retry_after_s=retry_after_s)

    def _post(self, texts: list[str]) -> np.ndarray:
        httpx = self._httpx
        payload: dict = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self.dimensions:
            payload["dimensions"] = self.dimensions
        n = len(texts)
        try:
            resp = self._client.post("embeddings", json=payload)
        except httpx.TimeoutException as exc:
            phase = type(exc).__name__.removesuffix("Timeout").lower() or "request"
            raise self._fail(f"no answer within the {phase} timeout for {n} text(s) ({type(exc).__name__})",
                             retryable=True) from None
        except httpx.TransportError as exc:
            raise self._fail(f"connection failed for {n} text(s) ({type(exc).__name__}: {exc})",
                             retryable=True) from None
        status = resp.status_code
        if status != 200:
            raise self._status_error(resp, n)
        try:
            body = resp.json()
        except ValueError:
            raise self._fail(f"answered HTTP 200 with malformed JSON ({len(resp.content)} bytes) for {n} text(s)",
                             retryable=True) from None
        return self._vectors(body, n)

    def _status_error(self, resp, n: int) -> EmbedderCallError:
        status = resp.status_code
        detail = _error_detail(resp)
        head = f"answered HTTP {status} for {n} text(s)"
        if status in RETRYABLE_STATUS:
            after = _retry_after(resp.headers.get("retry-after"))
            hint = f", Retry-After {after:g}s" if after is not None else ""
            return self._fail(f"{head}{hint}{detail}", retryable=True, retry_after_s=after)
        if status in (401, 403):
            return self._fail(f"{head}: the API key was refused{detail}", retryable=False)
        if status == 413:
            return self._fail(f"{head}: request too large; lower --embed-batch-texts / --embed-batch-tokens"
                              f"{detail}", retryable=False)
        if status == 404:
            return self._fail(f"{head}: unknown model {self.model!r} or no /embeddings endpoint at "
                              f"{self.base_url}{detail}", retryable=False)
        return self._fail(f"{head}{detail}", retryable=False)

    def _vectors(self, body: object, n: int) -> np.ndarray:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise self._fail(f"answer has no 'data' list for {n} text(s)", retryable=True)
        if len(data) != n:
            raise self._fail(f"answered {len(data)} embedding(s) for {n} text(s)", retryable=True)
        if not all(isinstance(d, dict) and isinstance(d.get("embedding"), list) for d in data):
            raise self._fail(f"answer for {n} text(s) has an item without an 'embedding' list", retryable=True)
        indexes = [d.get("index") for d in data]
        if all(isinstance(i, int) and not isinstance(i, bool) for i in indexes):
            if sorted(indexes) != list(range(n)):
                raise self._fail(f"answer indexes {sorted(indexes)[:5]}... are not 0..{n - 1}", retryable=True)
            data = sorted(data, key=lambda d: d["index"])
        rows = [d["embedding"] for d in data]
        width = len(rows[0])
        for row in rows:
            if len(row) != width or not all(type(x) in (float, int) for x in row):
                raise self._fail(f"answer for {n} text(s) has a vector that is ragged or holds non-numbers",
                                 retryable=True)
        expected = self.dim or self.dimensions or width
        if width != expected:
            raise self._fail(f"answered vectors of dimension {width}, expected {expected}", retryable=True)
        arr = np.asarray(rows, dtype=np.float32).reshape(n, width)
        if not np.isfinite(arr).all():
            raise self._fail(f"answered non-finite values (NaN or inf) for {n} text(s)", retryable=True)
        return arr

    def _probe(self) -> int:
        """The server's dimension for this model: one tiny request, a few tries when busy."""
        rng = random.Random()
        for attempt in range(PROBE_ATTEMPTS):
            try:
                vec = self._post([PROBE_TEXT])
            except EmbedderCallError as exc:
                if not exc.retryable or attempt + 1 >= PROBE_ATTEMPTS:
                    raise
                delay = max(rng.uniform(0.0, 0.5 * 2**attempt), min(exc.retry_after_s or 0.0,
                                                                     PROBE_RETRY_AFTER_MAX_S))
                log.warning("%s (probing the dimension, attempt %d; retrying in %.1fs)", exc.message,
                            attempt + 1, delay)
                time.sleep(delay)
                continue
            dim = int(vec.shape[1])
            if dim < 1:
                raise ConfigError(f"embedding server {self.host}: answered empty vectors for model "
                                  f"{self.model!r}", stage="embed")
            if self.dimensions and dim != self.dimensions:
                raise ConfigError(f"embedding server {self.host}: asked for {self.dimensions} dimensions, "
                                  f"got {dim}", stage="embed")
            return dim
        raise AssertionError("unreachable")  # pragma: no cover


def _error_detail(resp) -> str:
    """A short, single-line excerpt of an error answer (OpenAI-style ``error.message`` first)."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    text = ""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            text = str(err.get("message") or "")
        elif isinstance(err, str):
            text = err
        elif isinstance(body.get("message"), str):
            text = body["message"]
    if not text:
        try:
            text = resp.text
        except (UnicodeDecodeError, LookupError):
            text = ""
    text = " ".join(text.split())[:200]
    return f": {text}" if text else ""
