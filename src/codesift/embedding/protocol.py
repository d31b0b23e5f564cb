"""The embedder protocol: the public extension point of codesift.

An embedder turns a list of texts into a ``float32`` array of shape
``(len(texts), dim)``. ``embed`` is synchronous and may be called from a worker
thread (never concurrently on the same object by codesift).

``name`` is stored in the index; an index refuses to mix vectors from embedders with
different names. ``max_tokens`` is the model's token limit (``None`` if unlimited).

An embedder MAY also have:

* ``count_tokens(texts) -> list[int]``: codesift then uses it to size chunks (see
  :func:`codesift.embedding.count_tokens_for`);
* ``embed_query(texts) -> ndarray``: how a *search query* is embedded, for asymmetric
  models that prefix queries differently from documents (``embed`` embeds documents).
  Search calls :func:`embed_queries`, which falls back to ``embed``;
* ``close()``: releases what the embedder holds (pooled connections) at once; the
  built-in embedders also release it when garbage collected and at exit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from codesift.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import numpy


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int
    max_tokens: int | None

    def embed(self, texts: list[str]) -> "numpy.ndarray": ...


def is_cheap(embedder: Any) -> bool:
    """An embedder that declares ``cheap = True`` embeds about as fast as the tree is chunked
    (``hash``, ``static``): the pipeline then skips the fast tier, whose separate chunking
    pass would only repeat the work the embedder keeps up with."""
    return getattr(embedder, "cheap", False) is True


def embed_queries(embedder: Any, texts: list[str]) -> "numpy.ndarray":
    """Embed search queries: ``embedder.embed_query`` when it has one, else ``embed``."""
    method = getattr(embedder, "embed_query", None)
    if callable(method):
        return method(texts)
    return embedder.embed(texts)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_embedder(obj: Any, spec: str) -> Embedder:
    """Check that ``obj`` looks like an :class:`Embedder`; return it.

    Raises :class:`ConfigError` with a one-line message naming ``spec`` otherwise.
    Only attributes are checked here; nothing is embedded.
    """

    def fail(why: str) -> ConfigError:
        return ConfigError(f"embedder {spec!r}: {why}", stage="embed")

    kind = type(obj).__name__
    if obj is None:
        raise fail("the factory returned None, not an embedder")
    missing = [a for a in ("name", "dim", "max_tokens", "embed") if not hasattr(obj, a)]
    if missing:
        raise fail(
            f"object of type {kind} is not an embedder: missing {', '.join(missing)} "
            "(needs name: str, dim: int, max_tokens: int | None, embed(texts) -> ndarray)"
        )
    name = obj.name
    if not isinstance(name, str) or not name.strip():
        raise fail(f"name must be a non-empty str, got {name!r}")
    dim = obj.dim
    if not _is_int(dim) or dim <= 0:
        raise fail(f"dim must be a positive int, got {dim!r}")
    max_tokens = obj.max_tokens
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens <= 0):
        raise fail(f"max_tokens must be a positive int or None, got {max_tokens!r}")
    if not callable(obj.embed):
        raise fail(f"embed must be callable, got {type(obj.embed).__name__}")
    for optional in ("count_tokens", "embed_query", "close"):
        method = getattr(obj, optional, None)
        if method is not None and not callable(method):
            raise fail(f"{optional} must be callable when present, got {type(method).__name__}")
    return obj


def check_embeddings(array: Any, n: int, dim: int, spec: str) -> None:
    """Check one ``embed`` result: ndarray, float32, shape ``(n, dim)``, finite."""
    import numpy as np

    def fail(why: str) -> ConfigError:
        return ConfigError(f"embedder {spec!r}: embed() {why}", stage="embed")

    if not isinstance(array, np.ndarray):
        raise fail(f"must return a numpy.ndarray, got {type(array).__name__}")
    if array.shape != (n, dim):
        raise fail(f"returned shape {array.shape}, expected {(n, dim)}")
    if array.dtype != np.float32:
        raise fail(f"returned dtype {array.dtype}, expected float32")
    if not np.isfinite(array).all():
        raise fail("returned non-finite values")
