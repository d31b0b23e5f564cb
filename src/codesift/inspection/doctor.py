"""``codesift doctor``: check the environment codesift needs.

Every check runs on its own; a failure (any exception) becomes ``ok=False`` with a
one-line cause, so one broken piece never hides the others.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MIN_PYTHON = (3, 11)
MIN_FREE_BYTES = 500 << 20
DEFAULT_MODEL = "minilm"


class CheckFailed(Exception):
    """A check that ran but found a problem (its message is the detail)."""


def _one_line(exc: BaseException) -> str:
    one = getattr(exc, "one_line", None)
    if callable(one):
        try:
            return one()
        except Exception:  # noqa: BLE001
            pass
    text = " ".join(str(exc).split())
    if isinstance(exc, CheckFailed):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run(name: str, fn: Callable[[], str]) -> dict:
    try:
        detail = fn()
        return {"name": name, "ok": True, "detail": detail}
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none may crash doctor
        return {"name": name, "ok": False, "detail": _one_line(exc)}


def _python() -> str:
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if (v.major, v.minor) < MIN_PYTHON:
        raise CheckFailed(f"{text}; codesift needs Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}")
    return text


def _model() -> str:
    import numpy as np

    from ..embedding import load_embedder

    t0 = time.monotonic()
    emb = load_embedder(DEFAULT_MODEL)
    t1 = time.monotonic()
    vecs = np.asarray(emb.embed(["def f(): pass"]))
    t2 = time.monotonic()
    if vecs.shape != (1, emb.dim):
        raise CheckFailed(f"{emb.name}: embedding has shape {vecs.shape}, expected (1, {emb.dim})")
    if not np.isfinite(vecs).all():
        raise CheckFailed(f"{emb.name}: embedding has non-finite values")
    return f"{emb.name}, dim {emb.dim}, loaded in {t1 - t0:.2f}s, embedded in {t2 - t1:.3f}s"


def _grammars() -> list[dict]:
    from ..chunking import available_grammars

    grammars = available_grammars()
    out = []
    for lang, error in sorted(grammars.items()):
        if error is None:
            out.append({"name": f"grammar {lang}", "ok": True, "detail": "loads"})
        else:
            out.append({"name": f"grammar {lang}", "ok": False, "detail": " ".join(str(error).split())})
    if not out:
        out.append({"name": "grammars", "ok": False, "detail": "no tree-sitter grammar is known"})
    return out


def _lancedb() -> str:
    from ..store.chunks import _import_lancedb

    t0 = time.monotonic()
    lancedb = _import_lancedb()
    return f"lancedb {getattr(lancedb, '__version__', '?')} imported in {time.monotonic() - t0:.2f}s"


def _sqlite() -> str:
    """The manifest needs SQLite's FTS5 (the text leg) and JSON functions (a commit writes a
    batch of rows as one statement over a JSON array)."""
    import sqlite3

    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE t USING fts5(a)")
        if db.execute("SELECT count(*) FROM json_each('[1, 2]')").fetchone()[0] != 2:
            raise CheckFailed("json_each does not read a JSON array")
    except sqlite3.Error as exc:
        raise CheckFailed(f"SQLite {sqlite3.sqlite_version} lacks what the manifest needs (FTS5 and "
                          f"JSON functions, SQLite >= 3.38 has both): {exc}") from exc
    finally:
        db.close()
    return f"SQLite {sqlite3.sqlite_version} with FTS5 and JSON"


def _existing_dir(index_dir: Path) -> Path:
    """The index directory, or its nearest existing ancestor."""
    p = index_dir
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable(index_dir: Path) -> str:
    target = index_dir if index_dir.is_dir() else _existing_dir(index_dir)
    if not target.is_dir():
        raise CheckFailed(f"{target} is not a directory")
    fd, name = tempfile.mkstemp(prefix=".codesift-doctor-", dir=target)
    try:
        os.write(fd, b"ok")
    finally:
        os.close(fd)
        os.unlink(name)
    if target == index_dir:
        return f"{index_dir} is writable"
    return f"{index_dir} does not exist yet; {target} is writable"


def _disk(index_dir: Path) -> str:
    target = _existing_dir(index_dir)
    usage = shutil.disk_usage(target)
    free_mib = usage.free / (1 << 20)
    text = f"{free_mib:,.0f} MiB free on the filesystem of {target}"
    if usage.free < MIN_FREE_BYTES:
        raise CheckFailed(f"only {text}; at least {MIN_FREE_BYTES >> 20} MiB is needed")
    return text


def _lock(index_dir: Path) -> str:
    from ..store.layout import IndexLayout
    from ..store.lock import WriterLock

    layout = IndexLayout(index_dir)
    lock = WriterLock(layout.lock)
    if not lock.is_held_elsewhere():
        return "no index run holds the lock"
    pid = lock.holder_pid()
    return f"an index run (pid {pid if pid else '?'}) holds the lock; `codesift index` would wait or refuse"


def run_doctor(root: Path, index_dir: Path) -> list[dict]:
    index_dir = Path(index_dir)
    checks = [_run("python", _python), _run("model", _model)]
    try:
        checks.extend(_grammars())
    except Exception as exc:  # noqa: BLE001
        checks.append({"name": "grammars", "ok": False, "detail": _one_line(exc)})
    checks.append(_run("lancedb", _lancedb))
    checks.append(_run("sqlite", _sqlite))
    checks.append(_run("index dir writable", lambda: _writable(index_dir)))
    checks.append(_run("disk space", lambda: _disk(index_dir)))
    checks.append(_run("writer lock", lambda: _lock(index_dir)))
    return checks
