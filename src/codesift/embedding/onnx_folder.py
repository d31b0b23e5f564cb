"""A sentence-transformers-style ONNX export in a folder: ``onnx:DIR``.

The folder holds ``model.onnx`` (or ``onnx/model.onnx``) and ``tokenizer.json``, and
optionally the files sentence-transformers writes next to them; each one that is there
decides something, and nothing is guessed when it is not:

* ``1_Pooling/config.json``: mean, CLS, max or last-token pooling (default mean);
* ``modules.json``: whether a ``Normalize`` module follows (no modules.json: normalise,
  which is what cosine search wants);
* ``sentence_bert_config.json`` ``max_seq_length``, else ``config.json``
  ``max_position_embeddings``, else the tokenizer's truncation: the token limit, which
  is ``max_tokens``; chunks are sized to it with this tokenizer (prefix included), so
  the model never silently cuts a chunk short;
* ``config_sentence_transformers.json`` ``prompts``: the default query and document
  prefixes of asymmetric models (``--query-prefix`` / ``--document-prefix`` override).

The embedder's name is the folder's name plus a fingerprint of the model, the tokenizer,
the pooling, the normalisation and the document prefix: any of those changing changes
the vectors, and the index then refuses the new model without ``--full``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from codesift.errors import ConfigError

from .spec import Spec

log = logging.getLogger("codesift.embedding")

OPTIONS = ("device", "query_prefix", "document_prefix", "pooling", "normalize", "max_tokens", "gpu_memory_limit")
POOLINGS = ("mean", "cls", "max", "lasttoken")
DEFAULT_MAX_TOKENS = 512
_ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "longformer")  # positions start at 2
_MAX_BATCH = 32
# Padded tokens per micro-batch (texts sorted by length; see minilm.py for the measurement
# on CPU). A GPU wants much larger batches.
_MAX_BATCH_TOKENS = {"cpu": 512, "cuda": 16384}
_TOKENIZE_CAP_CHARS = 1 << 16
_FINGERPRINT_SPAN = 1 << 20
_QUERY_PROMPTS = ("query", "search_query", "queries")
_DOCUMENT_PROMPTS = ("document", "search_document", "passage", "corpus", "documents")


def _read_json(path: Path, spec: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"embedder {spec!r}: cannot read {path}: {exc}", stage="embed", cause=exc) from exc
    if not isinstance(data, (dict, list)):
        raise ConfigError(f"embedder {spec!r}: {path} is not a JSON object", stage="embed")
    return data


def _pooling_from(folder: Path, modules: list | None, spec: str) -> str:
    candidates = []
    if isinstance(modules, list):
        candidates = [folder / str(m.get("path", "")) / "config.json" for m in modules
                      if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling")]
    candidates.append(folder / "1_Pooling" / "config.json")
    for path in candidates:
        cfg = _read_json(path, spec)
        if not isinstance(cfg, dict):
            continue
        modes = [name for name, key in (("mean", "pooling_mode_mean_tokens"), ("cls", "pooling_mode_cls_token"),
                                        ("max", "pooling_mode_max_tokens"), ("lasttoken", "pooling_mode_lasttoken"))
                 if cfg.get(key)]
        others = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v
                  and k not in ("pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens",
                                "pooling_mode_lasttoken")]
        if len(modes) != 1 or others:
            raise ConfigError(f"embedder {spec!r}: {path} asks for pooling {modes + others or 'none'}; "
                              f"supported: exactly one of {', '.join(POOLINGS)}", stage="embed")
        return modes[0]
    return "mean"


def _max_tokens_from(folder: Path, tokenizer_cfg: dict, spec: str) -> tuple[int, str]:
    st = _read_json(folder / "sentence_bert_config.json", spec)
    if isinstance(st, dict) and isinstance(st.get("max_seq_length"), int) and st["max_seq_length"] > 0:
        return st["max_seq_length"], "sentence_bert_config.json max_seq_length"
    cfg = _read_json(folder / "config.json", spec)
    if isinstance(cfg, dict) and isinstance(cfg.get("max_position_embeddings"), int):
        n = cfg["max_position_embeddings"]
        if str(cfg.get("model_type", "")).lower() in _ROBERTA_LIKE:
            n -= 2
        if n > 0:
            return n, "config.json max_position_embeddings"
    trunc = tokenizer_cfg.get("truncation") if isinstance(tokenizer_cfg, dict) else None
    if isinstance(trunc, dict) and isinstance(trunc.get("max_length"), int) and trunc["max_length"] > 0:
        return trunc["max_length"], "tokenizer.json truncation"
    return DEFAULT_MAX_TOKENS, "default (the folder declares no limit)"


def _prompts_from(folder: Path, spec: str) -> tuple[str, str]:
    cfg = _read_json(folder / "config_sentence_transformers.json", spec)
    prompts = cfg.get("prompts") if isinstance(cfg, dict) else None
    if not isinstance(prompts, dict):
        return "", ""
    query = next((prompts[k] for k in _QUERY_PROMPTS if isinstance(prompts.get(k), str)), "")
    document = next((prompts[k] for k in _DOCUMENT_PROMPTS if isinstance(prompts.get(k), str)), "")
    return query, document


def _fingerprint(model_path: Path, tokenizer_raw: bytes, extra: str) -> str:
    """Cheap but specific: the model's size, its first and last MiB, the tokenizer, the options."""
    h = hashlib.sha256()
    size = model_path.stat().st_size
    h.update(str(size).encode())
    with open(model_path, "rb") as fh:
        h.update(fh.read(_FINGERPRINT_SPAN))
        if size > 2 * _FINGERPRINT_SPAN:
            fh.seek(size - _FINGERPRINT_SPAN)
            h.update(fh.read(_FINGERPRINT_SPAN))
    h.update(hashlib.sha256(tokenizer_raw).digest())
    h.update(extra.encode("utf-8"))
    return h.hexdigest()[:10]


def _bool_option(spec: Spec, key: str) -> bool | None:
    raw = spec.option(key)
    if raw is None:
        return None
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"embedder {spec.text!r}: option {key} must be true or false, got {raw!r}", stage="embed")


def load_onnx_folder(spec: Spec, *, threads: int = 0, queries: bool = False) -> "OnnxFolderEmbedder":
    spec.check_options(OPTIONS)
    if not spec.body:
        raise ConfigError(f"embedder {spec.text!r}: expected onnx:DIR (a folder with model.onnx and "
                          "tokenizer.json)", stage="embed")
    pooling = spec.option("pooling")
    if pooling is not None and pooling not in POOLINGS:
        raise ConfigError(f"embedder {spec.text!r}: pooling must be one of {', '.join(POOLINGS)}", stage="embed")
    from codesift.config import parse_size

    limit = spec.option("gpu_memory_limit")
    return OnnxFolderEmbedder(
        spec.body, threads=threads, device=spec.option("device"), device_explicit="device" in spec.options,
        query_prefix=spec.option("query_prefix"), document_prefix=spec.option("document_prefix"),
        pooling=pooling, normalize=_bool_option(spec, "normalize"),
        max_tokens=spec.int_option("max_tokens", None, minimum=8),
        gpu_memory_limit=parse_size(limit) if limit else None, spec=spec.text, queries=queries)


class OnnxFolderEmbedder:
    """A sentence-transformers ONNX export, run with onnxruntime and ``tokenizers``."""

    def __init__(self, folder: str | os.PathLike, *, threads: int = 0, device: str | None = None,
                 device_explicit: bool = False, query_prefix: str | None = None,
                 document_prefix: str | None = None, pooling: str | None = None, normalize: bool | None = None,
                 max_tokens: int | None = None, gpu_memory_limit: int | None = None, spec: str = "",
                 queries: bool = False) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ConfigError(f"embedder {spec!r} needs tokenizers: {exc}", stage="embed", cause=exc) from exc
        from .device import gpu_limit_for, make_session, resolve_device
        from .minilm import available_cpus

        spec = spec or f"onnx:{folder}"
        self.folder = Path(folder).expanduser().resolve()
        if not self.folder.is_dir():
            raise ConfigError(f"embedder {spec!r}: {self.folder} is not a folder", stage="embed")
        model_path = next((p for p in (self.folder / "model.onnx", self.folder / "onnx" / "model.onnx")
                           if p.is_file()), None)
        tok_path = self.folder / "tokenizer.json"
        missing = [n for n, p in (("model.onnx", model_path), ("tokenizer.json", tok_path))
                   if p is None or not p.is_file()]
        if missing:
            raise ConfigError(f"embedder {spec!r}: {self.folder} has no {' and no '.join(missing)} "
                              "(export a sentence-transformers model to ONNX, see the README)", stage="embed")
        raw = tok_path.read_bytes()
        try:
            tok_cfg = json.loads(raw)
            self._tok = Tokenizer.from_str(raw.decode("utf-8"))
            self._counter = Tokenizer.from_str(raw.decode("utf-8"))
        except Exception as exc:  # tokenizers raises untyped errors for a bad file: one clear line
            raise ConfigError(f"embedder {spec!r}: cannot load {tok_path}: {exc}", stage="embed",
                              cause=exc) from exc
        modules = _read_json(self.folder / "modules.json", spec)
        self.pooling = pooling or _pooling_from(self.folder, modules if isinstance(modules, list) else None, spec)
        if normalize is None:
            normalize = (not isinstance(modules, list)
                         or any(str(m.get("type", "")).endswith("Normalize") for m in modules if isinstance(m, dict)))
        self.normalize = normalize
        limit, source = _max_tokens_from(self.folder, tok_cfg, spec)
        if max_tokens is not None:
            if max_tokens > limit and source.startswith("config.json"):
                raise ConfigError(f"embedder {spec!r}: max_tokens {max_tokens} is above the model's "
                                  f"{limit} positions ({source})", stage="embed")
            limit, source = max_tokens, "--max-tokens"
        self.max_tokens: int | None = limit
        self.max_tokens_source = source
        q_default, d_default = _prompts_from(self.folder, spec)
        self.query_prefix = q_default if query_prefix is None else query_prefix
        self.document_prefix = d_default if document_prefix is None else document_prefix

        self._tok.no_padding()
        self._tok.enable_truncation(max_length=limit)
        self._counter.no_padding()
        self._counter.no_truncation()
        pad = None
        if isinstance(tok_cfg.get("padding"), dict):
            pad = tok_cfg["padding"].get("pad_id")
        self._pad_id = int(pad) if isinstance(pad, int) else (self._tok.token_to_id("[PAD]")
                                                               or self._tok.token_to_id("<pad>") or 0)

        if threads < 0:
            raise ConfigError(f"threads must be >= 0, got {threads}", stage="embed")
        self.threads = threads or available_cpus()
        self.device = resolve_device(device, spec, explicit=device_explicit)
        gpu_limit = gpu_limit_for(self, spec, gpu_memory_limit) if self.device == "cuda" else None
        self._session = make_session(str(model_path), threads=self.threads, device=self.device, spec=spec,
                                     gpu_mem_limit=gpu_limit, queries=queries)
        self._inputs = [i.name for i in self._session.get_inputs()]
        unknown = [n for n in self._inputs if n not in ("input_ids", "attention_mask", "token_type_ids",
                                                        "position_ids")]
        if "input_ids" not in self._inputs or unknown:
            raise ConfigError(f"embedder {spec!r}: model inputs {self._inputs} are not a text encoder's "
                              "(expected input_ids, attention_mask[, token_type_ids, position_ids])", stage="embed")
        self._int32 = {i.name for i in self._session.get_inputs() if i.type == "tensor(int32)"}
        outputs = self._session.get_outputs()
        by_name = {o.name: o for o in outputs}
        if "sentence_embedding" in by_name:
            self._output, self._pooled = "sentence_embedding", True
        else:
            hidden = by_name.get("last_hidden_state") or by_name.get("token_embeddings") or next(
                (o for o in outputs if len(o.shape or ()) == 3), None)
            if hidden is None:
                raise ConfigError(f"embedder {spec!r}: no token-embedding output among "
                                  f"{[o.name for o in outputs]}", stage="embed")
            self._output, self._pooled = hidden.name, False
        self.dim = 0
        self.dim = int(self._encode(["dimension probe"]).shape[1])
        tag = _fingerprint(model_path, raw, f"{self.pooling}|{self.normalize}|{self.document_prefix}")
        self.name = f"onnx:{self.folder.name}-{tag}"

    # -- protocol -------------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.document_prefix + t for t in texts] if self.document_prefix else texts,
                            documents=True)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts] if self.query_prefix else texts)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text as a document is embedded: prefix and special tokens included."""
        if not texts:
            return []
        prefix = self.document_prefix
        capped = [prefix + t[:_TOKENIZE_CAP_CHARS] for t in texts]
        counts = [len(e.ids) for e in self._counter.encode_batch(capped, add_special_tokens=True)]
        over = (self.max_tokens or 0) + 1
        return [c if len(t) <= _TOKENIZE_CAP_CHARS else max(c, over) for c, t in zip(counts, texts)]

    def close(self) -> None:
        """Nothing to release beyond what garbage collection frees (kept for the protocol)."""

    # -- internals ------------------------------------------------------------------
    def _encode(self, texts: list[str], *, documents: bool = False) -> np.ndarray:
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tok.encode_batch([t[:_TOKENIZE_CAP_CHARS] for t in texts], add_special_tokens=True)
        ids = [e.ids for e in encodings]
        if documents:
            cut = sum(1 for e in encodings if e.overflowing)
            if cut:
                # The pipeline sizes chunks with count_tokens, so this only happens to texts
                # from elsewhere (python API callers): said, never silent.
                log.warning("embedder %s: %d text(s) over the model's %d-token limit were truncated",
                            self.name, cut, self.max_tokens)
        order = sorted(range(n), key=lambda i: len(ids[i]))
        budget = _MAX_BATCH_TOKENS.get(self.device, 512)
        out: np.ndarray | None = None
        start = 0
        while start < n:
            end = start + 1
            while end < n and end - start < _MAX_BATCH and (end - start + 1) * len(ids[order[end]]) <= budget:
                end += 1
            group = order[start:end]
            vecs = self._run([ids[i] for i in group])
            if out is None:
                out = np.zeros((n, vecs.shape[1]), dtype=np.float32)
            out[group] = vecs
            start = end
        return out

    def _run(self, batch_ids: list[list[int]]) -> np.ndarray:
        lengths = [max(1, len(x)) for x in batch_ids]
        width = max(lengths)
        input_ids = np.full((len(batch_ids), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch_ids), width), dtype=np.int64)
        for row, seq in enumerate(batch_ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        if "position_ids" in self._inputs:
            feeds["position_ids"] = np.broadcast_to(np.arange(width, dtype=np.int64), input_ids.shape).copy()
        feeds = {k: v for k, v in feeds.items() if k in self._inputs}
        for name in self._int32:
            feeds[name] = feeds[name].astype(np.int32)
        result = np.asarray(self._session.run([self._output], feeds)[0], dtype=np.float32)
        if self._pooled:
            pooled = result
        else:
            pooled = self._pool(result, mask, lengths)
        if self.normalize:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = pooled / np.clip(norms, 1e-12, None)
        return np.ascontiguousarray(pooled, dtype=np.float32)

    def _pool(self, hidden: np.ndarray, mask: np.ndarray, lengths: list[int]) -> np.ndarray:
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "lasttoken":
            return hidden[np.arange(hidden.shape[0]), np.asarray(lengths) - 1]
        m = mask.astype(np.float32)[:, :, None]
        if self.pooling == "max":
            return np.where(m > 0, hidden, -np.inf).max(axis=1)
        return (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
