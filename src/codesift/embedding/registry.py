"""Embedder specs -> embedder objects, and the token counter codesift sizes chunks with.

Specs:

* ``minilm`` (default): all-MiniLM-L6-v2, int8 ONNX (:mod:`.minilm`).
* ``hash`` or ``hash:DIM``: hashed bag of words, no model (:mod:`.hashing`).
* ``static`` (``static?dims=N``): a static token table distilled once from the bundled
  MiniLM and cached (:mod:`.static`).
* ``openai:MODEL[@BASE_URL]`` / ``ollama:MODEL``: an OpenAI-compatible embedding
  server (:mod:`.openai_compat`).
* ``onnx:DIR``: a sentence-transformers ONNX export in a folder (:mod:`.onnx_folder`).
* ``python:MODULE:ATTR``: ``MODULE`` is imported from ``sys.path``, ``ATTR`` (may be
  dotted) is called with no arguments and must return an :class:`Embedder`.

Any spec may carry options after ``?`` (see :mod:`.spec`): ``minilm?device=cuda``,
``onnx:/models/bge?query_prefix=...``, ``openai:m@http://h/v1?key_env=MY_KEY``.
"""

from __future__ import annotations

import importlib
import math
import re
from typing import Any, Callable

from codesift.errors import ConfigError

from .protocol import Embedder, check_embedder, check_embeddings

DEFAULT_SPEC = "minilm"
VALID_SPECS = ("minilm", "static", "hash", "hash:DIM", "openai:MODEL[@BASE_URL]", "ollama:MODEL", "onnx:DIR",
               "python:MODULE:ATTR")


def _fail(spec: str, why: str, cause: BaseException | None = None) -> ConfigError:
    return ConfigError(f"embedder {spec!r}: {why}", stage="embed", cause=cause)


def load_embedder(spec: str = DEFAULT_SPEC, *, threads: int = 0, queries: bool = False) -> Embedder:
    """Build the embedder named by ``spec``; raise :class:`ConfigError` on any problem.

    ``threads`` is the number of intra-op threads for model-backed embedders
    (0 = the CPUs available to this process). Loading ``minilm`` loads the model now.
    ``queries``: the embedder serves searches, one short query per call: a local model
    then runs on one thread unless ``threads`` says otherwise (a query of a few tokens is
    no faster on two: 1.7-2.5 ms against 2.1-2.7 ms, 2 cores), and its threads sleep
    between calls (:func:`.device.make_session`).
    """
    if queries and not threads:
        threads = 1
    from .spec import parse_spec

    parsed = parse_spec(spec)
    head, rest = parsed.kind, parsed.body
    if head == "minilm" and not rest:
        from .device import resolve_device
        from .minilm import MiniLMEmbedder

        from codesift.config import parse_size

        parsed.check_options(("device", "gpu_memory_limit"))
        device = resolve_device(parsed.option("device"), parsed.text, explicit="device" in parsed.options)
        limit = parsed.option("gpu_memory_limit")
        return MiniLMEmbedder(threads=threads, device=device, gpu_memory_limit=parse_size(limit) if limit else None,
                              queries=queries)
    if head == "static" and not rest:
        from .static import load_static

        return load_static(parsed, threads=threads)
    if head == "hash":
        from .hashing import HashEmbedder

        parsed.check_options(())
        if not rest:
            return HashEmbedder()
        try:
            dim = int(rest)
        except ValueError:
            dim = -1
        if dim < 8:
            raise _fail(spec, f"hash dimension must be an integer >= 8, got {rest!r}")
        return HashEmbedder(dim)
    if head in ("openai", "ollama") and rest:
        from .openai_compat import load_openai

        return load_openai(parsed)
    if head == "onnx" and rest:
        from .onnx_folder import load_onnx_folder

        return load_onnx_folder(parsed, threads=threads, queries=queries)
    if head == "python":
        parsed.check_options(())
        return _load_python(spec, rest)
    raise ConfigError(
        f"unknown embedder spec {spec!r}; valid specs: {', '.join(VALID_SPECS)}", stage="embed"
    )


def _load_python(spec: str, rest: str) -> Embedder:
    module_name, sep, attr = rest.rpartition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise _fail(spec, "expected python:MODULE:ATTR (e.g. python:my_pkg.embed:make)")
    module_name, attr = module_name.strip(), attr.strip()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name) and module_name[len(exc.name):][:1] in ("", "."):
            raise _fail(spec, f"module {module_name!r} not found on sys.path", exc) from exc
        raise _fail(spec, f"importing module {module_name!r} failed: {exc}", exc) from exc
    except Exception as exc:
        raise _fail(spec, f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}", exc) from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise _fail(spec, f"module {module_name!r} has no attribute {attr!r}", exc) from exc
    if not callable(target):
        raise _fail(spec, f"{module_name}:{attr} is not callable (got {type(target).__name__})")
    try:
        obj = target()
    except Exception as exc:
        raise _fail(spec, f"factory {module_name}:{attr}() raised {type(exc).__name__}: {exc}", exc) from exc
    # Attributes only: nothing is embedded at load time (an embed call belongs under the
    # pipeline's deadline and retries, which check every result's shape, dtype and values).
    return check_embedder(obj, spec)


# -- token counting ---------------------------------------------------------------------

# Pieces as a BERT WordPiece pre-tokeniser sees them: runs of letters/digits and single
# punctuation characters.
_PIECES = re.compile(r"[^\W_]+|[^\w\s]|_")
_HAS_DIGIT = re.compile(r"\d")
_FACTOR = 1.3


def _extra_pieces(piece: str) -> int:
    """Word pieces beyond the first one that a long run is likely to split into."""
    n = len(piece)
    if n <= 2:
        return 0
    if not piece.isascii():
        return n - 1  # CJK and other scripts: often one token per character
    if _HAS_DIGIT.search(piece):
        return (n - 1) // 2  # numbers and hex literals split into 1-3 char pieces
    return n // 4 if n > 4 else 0


def estimate_tokens(texts: list[str]) -> list[int]:
    """Conservative token estimate for embedders without their own counter.

    Meant to over-count, not under-count, a BERT WordPiece tokenizer on code: each
    letter/digit run and each punctuation character counts one piece, long runs,
    numbers and non-ASCII runs count extra pieces, everything times 1.3, plus 2 for
    special tokens.
    """
    out = []
    for text in texts:
        pieces = _PIECES.findall(text)
        extra = sum(_extra_pieces(p) for p in pieces if len(p) > 2)
        out.append(math.ceil((len(pieces) + extra) * _FACTOR) + 2)
    return out


def count_tokens_for(embedder: Any) -> Callable[[list[str]], list[int]]:
    """The embedder's own ``count_tokens`` if it has one, else :func:`estimate_tokens`."""
    counter = getattr(embedder, "count_tokens", None)
    if callable(counter):
        return counter
    return estimate_tokens
