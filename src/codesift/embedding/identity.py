"""The (name, dim) a built-in spec will produce, known without loading a model.

The index refuses to mix embedders; checking that before the model loads keeps a
no-change re-index free of onnxruntime.
"""

from __future__ import annotations

MINILM_NAME = "minilm-l6-v2-int8pc"  # the per-channel requantised model (see embedding/quantize.py)
MINILM_DIM = 384
HASH_DEFAULT_DIM = 256


def builtin_identity(spec: str) -> tuple[str, int] | None:
    """(name, dim) for ``minilm`` and ``hash`` specs; None for any other (or a bad) spec.

    Options (``?device=...``) do not change the vectors, so they do not change this.
    """
    from codesift.errors import ConfigError

    from .spec import parse_spec

    try:
        parsed = parse_spec(spec)
    except ConfigError:
        return None  # loading the embedder reports it
    head, rest = parsed.kind, parsed.body
    if head == "minilm" and not rest:
        return MINILM_NAME, MINILM_DIM
    if head == "hash":
        if not rest:
            return f"hash-{HASH_DEFAULT_DIM}", HASH_DEFAULT_DIM
        if rest.isdigit() and int(rest) >= 8:
            return f"hash-{int(rest)}", int(rest)
    return None


def builtin_chunking(spec: str):
    """What chunking needs of the embedder (``max_tokens``, ``count_tokens``) for a
    ``minilm`` spec, without loading its model: the same tokenizer, so the chunks are the
    ones the loaded embedder would make. None for any other spec (load the embedder)."""
    from codesift.errors import ConfigError

    from .spec import parse_spec

    try:
        parsed = parse_spec(spec)
    except ConfigError:
        return None
    if parsed.kind == "minilm" and not parsed.body:
        from .minilm import TokenCounter

        return TokenCounter()
    return None
