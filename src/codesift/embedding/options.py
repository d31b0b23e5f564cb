"""The embedder options of the command line, folded into the embedder spec.

The options become ``?key=value`` options of the spec (see :mod:`.spec`), so the index
stores them with the spec and search embeds queries the same way the index run
embedded documents. Only the *name* of the key's environment variable is stored.
"""

from __future__ import annotations

import argparse

from .spec import with_options

EMBEDDER_HELP = ("minilm (default), static, hash, openai:MODEL[@BASE_URL], ollama:MODEL, onnx:DIR, or "
                 "python:MODULE:ATTR (a factory returning an Embedder); `codesift models` lists them")

# (flag, spec option, help)
_FLAGS = (
    ("--device", "device", "onnx-based embedders (minilm, onnx:DIR): auto (default: CUDA when onnxruntime has "
                           "it, else the CPU), cpu, or cuda (needs: pip install 'codesift[gpu]')"),
    ("--gpu-memory-limit", "gpu_memory_limit", "with CUDA: GPU memory the run may fill before the embed stage "
                                               "waits (default 90%% of the device), e.g. 8GiB"),
    ("--query-prefix", "query_prefix", "text put before every search query (asymmetric models; "
                                       "default: the model folder's prompts, else none)"),
    ("--document-prefix", "document_prefix", "text put before every chunk that is embedded "
                                             "(default: the model folder's prompts, else none)"),
    ("--api-key-env", "key_env", "openai:/ollama: the environment variable holding the API key "
                                 "(default OPENAI_API_KEY; the key itself is never stored or printed)"),
    ("--embed-batch-texts", "batch_texts", "openai:/ollama: texts per request (default 32)"),
    ("--embed-batch-tokens", "batch_tokens", "openai:/ollama: estimated tokens per request (default 8192)"),
    ("--embed-max-tokens", "max_tokens", "token limit per chunk (openai:/ollama: default 512; "
                                         "onnx:DIR: default from the folder's config)"),
    ("--embed-request-timeout", "timeout", "openai:/ollama: seconds to wait for a server's answer "
                                           "(default 60; --embed-timeout bounds the whole call)"),
)


def add_embedder_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("embedder options (stored with the index; search reuses them)")
    for flag, _, text in _FLAGS:
        group.add_argument(flag, default=None, help=text)


def embedder_spec_from_args(base: str, args: argparse.Namespace) -> str:
    """``base`` with the options given on the command line, and an ``onnx:`` folder made
    absolute (the spec is stored, and search may run from another directory)."""
    base = _absolute_folder(base)
    given = {option: getattr(args, flag[2:].replace("-", "_"), None) for flag, option, _ in _FLAGS}
    if all(v is None for v in given.values()):
        return base
    return with_options(base, **given)


def _absolute_folder(spec: str) -> str:
    from pathlib import Path

    from codesift.errors import ConfigError

    from .spec import parse_spec

    try:
        parsed = parse_spec(spec)
    except ConfigError:
        return spec  # loading the embedder reports it
    if parsed.kind != "onnx" or not parsed.body:
        return spec
    folder = str(Path(parsed.body).expanduser().resolve())
    _, sep, query = parsed.text.partition("?")
    return f"onnx:{folder}{sep}{query}"
