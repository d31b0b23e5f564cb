"""Embedders: text -> float32 vectors.

Importing this package is cheap: numpy is the only heavy import; onnxruntime and
tokenizers are imported when a model-backed embedder is built, httpx2 when a server-backed one is.
"""

from __future__ import annotations

from .protocol import Embedder, check_embedder, check_embeddings, embed_queries
from .registry import DEFAULT_SPEC, VALID_SPECS, count_tokens_for, estimate_tokens, load_embedder

__all__ = [
    "DEFAULT_SPEC",
    "VALID_SPECS",
    "Embedder",
    "check_embedder",
    "check_embeddings",
    "count_tokens_for",
    "embed_queries",
    "estimate_tokens",
    "load_embedder",
]
