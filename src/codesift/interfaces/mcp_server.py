"""The codesift MCP server: tools over the index, served on stdio or streamable HTTP.

Layout:

* :class:`CodesiftService` holds the tools: argument checking, the calls into the
  searcher / status / index job, and the structured result of each. It knows nothing of
  the protocol. A bad argument or a failed call raises :class:`ToolError`, which becomes a
  tool result with ``isError: true`` and ``structuredContent.error = {code, message}``.
* :func:`serve_stdio` is a small JSON-RPC 2.0 loop over stdin/stdout speaking the MCP
  handshake-era protocol (``initialize`` … ``tools/call``; 2024-11-05 to 2025-11-25).
  It needs only the standard library, so ``initialize`` is answered ~0.15 s after the
  process starts (importing the ``mcp`` SDK alone takes ~0.6 s). Each request runs on
  its own thread under a deadline; stdout carries protocol messages only (fd 1 is
  pointed at stderr for everything else).
* :func:`serve_http` serves the same tools over streamable HTTP with the official SDK
  (``mcp.server.lowlevel.Server``), imported only for ``--transport http``.

Nothing heavy is imported at start-up: LanceDB and the model runtime load on the first
search (in the thread serving it), and indexing runs in a subprocess
(``python -m codesift index``) that :class:`JobManager` watches.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("codesift.mcp")

SERVER_NAME = "codesift"
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = HANDSHAKE_VERSIONS[-1]
MODES = ("hybrid", "vector", "text")
MAX_K = 100
MAX_QUERY_CHARS = 4000
MAX_READ_LINES = 2000
MAX_READ_BYTES = 512 * 1024
MAX_FILTERS = 50
STALE_CAP = 200
STALE_SCAN_S = 5.0
JOBS_KEPT = 20
DEFAULT_TOOL_TIMEOUT_S = 30.0
DEFAULT_JOB_TIMEOUT_S = 3600.0
MAX_CONCURRENT_CALLS = 4
HIT_CONTENT_CHARS = 4000

INSTRUCTIONS = (
    "codesift searches this codebase by meaning and keyword. Use search_code to find code for a "
    "description or an identifier, find_similar for code resembling a given location, read_code to "
    "read exact lines (paths relative to the project root), index_status to see what is indexed or "
    "stale, and reindex + job_status to refresh the index after edits."
)


class ToolError(Exception):
    """A tool call that cannot succeed; the message is for the agent that made it."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, **self.details}


# --------------------------------------------------------------------------- tool schemas

_HIT_SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "POSIX path relative to the project root"},
        "start_line": {"type": "integer", "description": "first line of the chunk (1-based)"},
        "end_line": {"type": "integer", "description": "last line of the chunk (inclusive)"},
        "symbol": {"type": "string", "description": "enclosing function/class name, '' if none"},
        "kind": {"type": "string", "description": "chunk kind (function, class, method, window, ...)"},
        "language": {"type": "string"},
        "score": {"type": "number", "description": "relevance; higher is better (meaning depends on mode)"},
        "content": {"type": "string", "description": "the chunk's source text (may be truncated)"},
    },
    "required": ["path", "start_line", "end_line", "score", "content"],
}

_HITS_OUTPUT = {
    "type": "object",
    "properties": {"hits": {"type": "array", "items": _HIT_SCHEMA}, "count": {"type": "integer"}},
    "required": ["hits", "count"],
}

TOOLS: list[dict] = [
    {
        "name": "search_code",
        "title": "Search code",
        "description": (
            "Search the indexed codebase by meaning and keyword. Returns the best-matching code chunks "
            "(path, line range, enclosing symbol, score, source text), best first. mode: 'hybrid' "
            "(default; semantic + keyword fusion, score 0..1), 'vector' (semantic only, cosine "
            "similarity), 'text' (keyword/BM25 only; good for exact identifiers). Narrow results with "
            "languages (e.g. ['python']) and paths (globs relative to the root, e.g. ['src/**', '*.py']; "
            "a plain directory name matches everything under it). Results reflect the last index run; "
            "see index_status for stale files."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS,
                          "description": "what to look for: a description in words or an identifier"},
                "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10,
                      "description": f"number of hits to return (1-{MAX_K})"},
                "mode": {"type": "string", "enum": list(MODES), "default": "hybrid"},
                "languages": {"type": "array", "items": {"type": "string"}, "default": [],
                              "description": "only these languages (e.g. python, javascript, markdown)"},
                "paths": {"type": "array", "items": {"type": "string"}, "default": [],
                          "description": "only paths matching any of these globs or directories"},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "outputSchema": _HITS_OUTPUT,
        "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
    },
    {
        "name": "find_similar",
        "title": "Find similar code",
        "description": (
            "Find code similar to the indexed chunk that contains PATH:LINE (semantic similarity of "
            "embeddings; the chunk itself is excluded). Use it to find duplicates, other implementations "
            "of the same idea, or related call sites. path is relative to the project root."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "description": "file path relative to the project root"},
                "line": {"type": "integer", "minimum": 1, "description": "a line inside the chunk (1-based)"},
                "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
            },
            "required": ["path", "line"],
            "additionalProperties": False,
        },
        "outputSchema": _HITS_OUTPUT,
        "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
    },
    {
        "name": "read_code",
        "title": "Read code",
        "description": (
            "Read lines start_line..end_line (1-based, inclusive) of a file inside the project root. "
            "Paths are relative to the root; absolute paths, '..' and symlinks leading outside the root "
            f"are refused. At most {MAX_READ_LINES} lines per call; end_line past the end of the file is "
            "clamped (the result says so), start_line past the end is an error. Omit end_line to read "
            f"{MAX_READ_LINES} lines from start_line."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "description": "file path relative to the project root"},
                "start_line": {"type": "integer", "minimum": 1, "default": 1},
                "end_line": {"type": "integer", "minimum": 1,
                             "description": "last line to read (inclusive); default: start_line + "
                                            f"{MAX_READ_LINES - 1}"},
            },
            "required": ["path"],
            "additionalProperties": False,
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "path": {"type": "string"}, "start_line": {"type": "integer"}, "end_line": {"type": "integer"},
                "total_lines": {"type": "integer"}, "truncated": {"type": "boolean"},
                "content": {"type": "string"},
            },
            "required": ["path", "start_line", "end_line", "total_lines", "truncated", "content"],
        },
        "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
    },
    {
        "name": "index_status",
        "title": "Index status",
        "description": (
            "What the index holds and how fresh it is: files indexed / skipped (with reasons) / errors, "
            "chunk count, embedder, the last index run (status, time, error), stale files (new, modified "
            "or deleted since they were indexed: call reindex to refresh them), a running index job if "
            "any, and whether the server watches the tree. exists=false means nothing is indexed yet: "
            "call reindex."
        ),
        "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
        "outputSchema": {"type": "object", "properties": {"exists": {"type": "boolean"}}, "required": ["exists"]},
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
    {
        "name": "reindex",
        "title": "Re-index",
        "description": (
            "Start an index run in the background and return its job_id at once (a run can take "
            "minutes; poll job_status). Incremental by default: only new, changed and deleted files are "
            "processed. full=true rebuilds everything. If a job is already running, its id is returned "
            "(reused=true) instead of starting another; if another process is writing the index, the "
            "call fails with code 'locked'."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {"full": {"type": "boolean", "default": False,
                                    "description": "rebuild the whole index instead of updating it"}},
            "additionalProperties": False,
        },
        "outputSchema": {
            "type": "object",
            "properties": {"job_id": {"type": "string"}, "state": {"type": "string"}, "reused": {"type": "boolean"}},
            "required": ["job_id", "state"],
        },
        "annotations": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True,
                        "openWorldHint": False},
    },
    {
        "name": "job_status",
        "title": "Index job status",
        "description": (
            "Progress of an index job started by reindex: state (running, succeeded, failed), files "
            "and chunks done so far, and when finished the run summary or the error message."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {"job_id": {"type": "string", "minLength": 1, "description": "the id reindex returned"}},
            "required": ["job_id"],
            "additionalProperties": False,
        },
        "outputSchema": {
            "type": "object",
            "properties": {"job_id": {"type": "string"}, "state": {"type": "string"}},
            "required": ["job_id", "state"],
        },
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
]

TOOL_NAMES = {t["name"] for t in TOOLS}


# --------------------------------------------------------------------------- argument checks

def _args(arguments: Any, tool: dict) -> dict:
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ToolError("invalid_arguments", "arguments must be a JSON object")
    allowed = set(tool["inputSchema"]["properties"])
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        raise ToolError("invalid_arguments", f"unknown argument(s) {', '.join(unknown)}; "
                                             f"{tool['name']} takes {', '.join(sorted(allowed)) or 'none'}")
    for name in tool["inputSchema"].get("required", []):
        if name not in arguments or arguments[name] is None:
            raise ToolError("invalid_arguments", f"missing required argument {name!r}")
    return arguments


def _int(args: dict, name: str, default: int | None, lo: int, hi: int | None = None) -> int | None:
    value = args.get(name, default)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolError("invalid_arguments", f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ToolError("invalid_arguments", f"{name} must be {rng}, got {value}")
    return value


def _str(args: dict, name: str, *, max_len: int = 4096) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise ToolError("invalid_arguments", f"{name} must be a string, got {value!r}")
    if not value.strip():
        raise ToolError("invalid_arguments", f"{name} must not be empty")
    if len(value) > max_len:
        raise ToolError("invalid_arguments", f"{name} is too long ({len(value)} characters, at most {max_len})")
    if "\x00" in value:
        raise ToolError("invalid_arguments", f"{name} must not contain NUL characters")
    return value


def _str_list(args: dict, name: str) -> list[str]:
    value = args.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ToolError("invalid_arguments", f"{name} must be a list of strings, got {value!r}")
    if len(value) > MAX_FILTERS:
        raise ToolError("invalid_arguments", f"{name}: at most {MAX_FILTERS} entries")
    return [v for v in value if v.strip()]


def _bool(args: dict, name: str, default: bool) -> bool:
    value = args.get(name, default)
    if not isinstance(value, bool):
        raise ToolError("invalid_arguments", f"{name} must be true or false, got {value!r}")
    return value


# --------------------------------------------------------------------------- the service

class CodesiftService:
    """The tools over one root and index directory (thread-safe)."""

    def __init__(self, root: Path, index_dir: Path, *, embedder: str | None = None,
                 tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S, job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S,
                 watcher=None) -> None:
        self.root = Path(root)
        self.real_root = Path(os.path.realpath(self.root))
        self.index_dir = Path(index_dir)
        self.embedder_option = embedder
        self.tool_timeout_s = tool_timeout_s
        self.jobs = JobManager(self, job_timeout_s)
        self.watcher = watcher
        self._search_lock = threading.Lock()
        self._searcher = None
        self._searcher_key: tuple | None = None
        self._embedders: dict[str, Any] = {}

    # -- dispatch -------------------------------------------------------------------------
    def call(self, name: str, arguments: Any, deadline: float) -> tuple[dict, str]:
        """Run one tool: (structured result, text rendering); raises ToolError."""
        tool = next((t for t in TOOLS if t["name"] == name), None)
        if tool is None:
            raise ToolError("unknown_tool", f"unknown tool {name!r}; tools: {', '.join(sorted(TOOL_NAMES))}")
        args = _args(arguments, tool)
        handler = getattr(self, "tool_" + name)
        try:
            return handler(args, deadline)
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a tool error, never a crash
            from ..errors import CodesiftError, NoIndexError

            if isinstance(exc, NoIndexError):
                raise ToolError("no_index", f"{exc.one_line()} (call reindex to build it)") from exc
            if isinstance(exc, CodesiftError):
                code = "invalid_arguments" if type(exc).__name__ == "ConfigError" else "failed"
                raise ToolError(code, exc.one_line()) from exc
            log.exception("tool %s failed", name)
            raise ToolError("internal_error", f"{type(exc).__name__}: {exc}") from exc

    # -- search ---------------------------------------------------------------------------
    def _index_key(self) -> tuple:
        """Changes whenever an index run commits (the manifest is written last)."""
        key = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(f"{self.index_dir / 'manifest.sqlite'}{suffix}")
                key.append((st.st_mtime_ns, st.st_size))
            except OSError:
                key.append(None)
        return tuple(key)

    def _get_searcher(self):
        """A searcher over the index as it is now; reopened after each commit, the loaded
        embedder kept (the model loads once per process)."""
        key = self._index_key()
        if self._searcher is None or key != self._searcher_key:
            from ..search.engine import open_searcher

            searcher = open_searcher(self.root, self.index_dir)
            spec = getattr(searcher, "embedder_spec", None)
            if spec in self._embedders:
                searcher._embedder = self._embedders[spec]
            self._searcher, self._searcher_key = searcher, key
        return self._searcher

    def _remember_embedder(self, searcher) -> None:
        emb = getattr(searcher, "_embedder", None)
        spec = getattr(searcher, "embedder_spec", None)
        if emb is not None and spec:
            self._embedders[spec] = emb

    @contextlib.contextmanager
    def _locked(self, deadline: float):
        """Searches run one at a time (the table and the model are shared), within the deadline."""
        if not self._search_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise ToolError("timeout", "another search is still running; try again")
        try:
            yield
        finally:
            self._search_lock.release()

    def _relpath(self, path: str) -> tuple[str, Path]:
        """``path`` (relative to the root) as (POSIX relative path, real absolute path);
        refuses anything that leads outside the root."""
        if "\x00" in path:
            raise ToolError("invalid_arguments", "path must not contain NUL characters")
        p = Path(path)
        if p.is_absolute() or path.startswith("~"):
            raise ToolError("path_outside_root", f"path must be relative to the project root, got {path!r}",
                            path=path)
        parts = [x for x in p.parts if x not in ("", ".")]
        if ".." in parts:
            raise ToolError("path_outside_root", f"path must not contain '..': {path!r}", path=path)
        full = Path(os.path.realpath(self.real_root.joinpath(*parts))) if parts else self.real_root
        try:
            rel = full.relative_to(self.real_root)
        except ValueError:
            raise ToolError("path_outside_root", f"{path!r} leads outside the project root (symlink)",
                            path=path) from None
        return "/".join(parts), full

    def tool_search_code(self, args: dict, deadline: float) -> tuple[dict, str]:
        query = _str(args, "query", max_len=MAX_QUERY_CHARS)
        k = _int(args, "k", 10, 1, MAX_K)
        mode = args.get("mode", "hybrid")
        if mode not in MODES:
            raise ToolError("invalid_arguments", f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        languages = _str_list(args, "languages")
        paths = _str_list(args, "paths")
        filters: dict[str, Any] = {}
        if languages:
            filters["lang"] = languages
        if paths:
            filters["path"] = paths
        with self._locked(deadline):
            searcher = self._get_searcher()
            try:
                hits = searcher.search(query, k=k, mode=mode, **filters)
            finally:
                self._remember_embedder(searcher)
        return _hits_result(hits, f"{len(hits)} hit(s) for {query!r}")

    def tool_find_similar(self, args: dict, deadline: float) -> tuple[dict, str]:
        path = _str(args, "path")
        line = _int(args, "line", None, 1)
        k = _int(args, "k", 10, 1, MAX_K)
        rel, full = self._relpath(path)
        with self._locked(deadline):
            searcher = self._get_searcher()
            if not hasattr(searcher, "similar"):
                raise ToolError("unsupported", "this codesift version cannot search for similar code")
            try:
                hits = searcher.similar(rel, line, k=k)
            finally:
                self._remember_embedder(searcher)
        return _hits_result(hits, f"{len(hits)} chunk(s) similar to {rel}:{line}")

    # -- read -----------------------------------------------------------------------------
    def tool_read_code(self, args: dict, deadline: float) -> tuple[dict, str]:
        path = _str(args, "path")
        start = _int(args, "start_line", 1, 1)
        end = _int(args, "end_line", None, 1)
        if end is not None and end < start:
            raise ToolError("invalid_arguments", f"end_line ({end}) must be >= start_line ({start})")
        rel, full = self._relpath(path)
        if not full.exists():
            raise ToolError("not_found", f"no such file: {rel}", path=rel)
        if not full.is_file():
            raise ToolError("not_a_file", f"not a regular file: {rel}", path=rel)
        try:
            with open(full, "rb") as fh:
                data = fh.read(16 * 1024 * 1024 + 1)
        except OSError as exc:
            raise ToolError("unreadable", f"cannot read {rel}: {exc.strerror or exc}", path=rel) from None
        if b"\x00" in data[:8192]:
            raise ToolError("binary_file", f"{rel} is a binary file", path=rel)
        lines = data.decode("utf-8", "replace").splitlines()
        total = len(lines)
        if start > max(total, 1) or (total == 0 and start > 1):
            raise ToolError("line_out_of_range", f"start_line {start} is past the end of {rel} ({total} lines)",
                            path=rel, total_lines=total)
        want_end = end if end is not None else start + MAX_READ_LINES - 1
        stop = min(want_end, total, start + MAX_READ_LINES - 1)
        out, size = [], 0
        for i in range(start - 1, stop):
            size += len(lines[i]) + 1
            if size > MAX_READ_BYTES and out:
                stop = i
                break
            out.append(lines[i])
        truncated = stop < min(want_end, total)
        content = "\n".join(out)
        result = {"path": rel, "start_line": start, "end_line": max(stop, start) if out else start,
                  "total_lines": total, "truncated": truncated, "content": content}
        note = ""
        if end is not None and end > total:
            note = f" (end_line {end} clamped to the end of the file)"
        if truncated:
            note += f" (truncated; continue at start_line {stop + 1})"
        text = f"{rel}:{start}-{result['end_line']} of {total} lines{note}\n" + "\n".join(
            f"{n:>6}  {s}" for n, s in enumerate(out, start))
        return result, text

    # -- status ---------------------------------------------------------------------------
    def tool_index_status(self, args: dict, deadline: float) -> tuple[dict, str]:
        from ..errors import NoIndexError
        from ..inspection.status import collect_status

        job = self.jobs.current()
        watching = self.watcher.describe() if self.watcher is not None else None
        try:
            report = collect_status(self.root, self.index_dir)
        except NoIndexError:
            result = {"exists": False, "root": str(self.root), "index_dir": str(self.index_dir),
                      "job": job, "watch": watching,
                      "hint": "nothing is indexed yet; call reindex to build the index"}
            return result, f"no index at {self.index_dir}; call reindex to build it"
        stale = self._stale(min(deadline, time.monotonic() + STALE_SCAN_S))
        files = report["files"]
        result = {
            "exists": True,
            "root": report["root"],
            "index_dir": report["index_dir"],
            "embedder": report["embedder"],
            "files": {"indexed": files.get("indexed", 0), "skipped": files.get("skipped", 0),
                      "error": files.get("error", 0)},
            "chunks": report["chunks"],
            "languages": report["languages"],
            "index_size_bytes": report["index_size_bytes"],
            "last_run": report["last_run"],
            "skipped": report["skipped"],
            "skipped_total": report["skipped_total"],
            "stale": stale,
            "pending_total": report["pending_total"],
            "running": report["running"],
            "job": job,
            "watch": watching,
        }
        last = report["last_run"] or {}
        lines = [
            f"index of {report['root']} ({report['embedder'].get('name') or '-'})",
            f"files: {files.get('indexed', 0)} indexed, {files.get('skipped', 0)} skipped, "
            f"{files.get('error', 0)} errors; {report['chunks']} chunks",
            f"last run: {last.get('status') or 'none'}"
            + (f", error: {last['error']}" if last.get("error") else ""),
            f"stale: {stale['total']} file(s)" + ("" if stale["complete"] else " (scan incomplete)")
            + (" - call reindex to refresh" if stale["total"] else ""),
        ]
        if report["running"]:
            lines.append(f"running: pid {report['running'].get('pid')} {report['running'].get('state')}")
        if job:
            lines.append(f"job {job['job_id']}: {job['state']}")
        return result, "\n".join(lines)

    def _stale(self, deadline: float) -> dict:
        """Files whose state differs from the manifest (cheap: a walk and stats, no reads)."""
        from ..discovery import discover
        from ..inspection._common import open_manifest
        from ..models import FileEntry
        from ..store.layout import IndexLayout

        m = open_manifest(IndexLayout(self.index_dir))
        try:
            known = {r.path: r for r in m.iter_files()}
        finally:
            m.close()
        new, modified, seen = [], [], set()
        complete = True
        n_new = n_mod = 0
        max_size = _max_file_size_default()
        for item in discover(self.root, index_dir=self.index_dir, max_file_size=max_size):
            if time.monotonic() > deadline:
                complete = False
                break
            seen.add(item.path)
            prev = known.get(item.path)
            if not isinstance(item, FileEntry):
                if prev is None:
                    continue  # a skip the next run records; nothing to search either way
                if prev.status == "skipped":
                    continue
            if prev is None:
                n_new += 1
                if len(new) < STALE_CAP:
                    new.append(item.path)
            elif (prev.size, prev.mtime_ns) != (getattr(item, "size", prev.size), getattr(item, "mtime_ns", None)):
                n_mod += 1
                if len(modified) < STALE_CAP:
                    modified.append(item.path)
        deleted = sorted(set(known) - seen) if complete else []
        return {"total": n_new + n_mod + len(deleted), "complete": complete,
                "new": new, "modified": modified, "deleted": deleted[:STALE_CAP],
                "new_total": n_new, "modified_total": n_mod, "deleted_total": len(deleted)}

    # -- jobs -----------------------------------------------------------------------------
    def tool_reindex(self, args: dict, deadline: float) -> tuple[dict, str]:
        full = _bool(args, "full", False)
        job, reused = self.jobs.start(full)
        result = {"job_id": job["job_id"], "state": job["state"], "reused": reused, "full": job["full"]}
        verb = "already running" if reused else "started"
        return result, f"index job {job['job_id']} {verb}; poll job_status"

    def tool_job_status(self, args: dict, deadline: float) -> tuple[dict, str]:
        job_id = _str(args, "job_id", max_len=200)
        job = self.jobs.status(job_id)
        text = f"job {job_id}: {job['state']}"
        if job.get("progress"):
            p = job["progress"]
            text += f" ({p.get('files_indexed', 0)}/{p.get('files_to_index', 0)} files)"
        if job.get("error"):
            text += f": {job['error']}"
        elif job.get("summary"):
            s = job["summary"]
            text += (f": {s['files']['indexed']} indexed, {s['files']['unchanged']} unchanged, "
                     f"{s['files']['deleted']} deleted in {s['duration_s']}s")
        return job, text

    def close(self, timeout_s: float = 10.0) -> None:
        self.jobs.stop_all(timeout_s)


def _max_file_size_default() -> int:
    from ..config import DEFAULT_MAX_FILE_SIZE

    return DEFAULT_MAX_FILE_SIZE


def _hits_result(hits, headline: str) -> tuple[dict, str]:
    rows = []
    for h in hits:
        d = h.as_dict() if hasattr(h, "as_dict") else dict(h)
        d.pop("id", None)
        content = d.get("content") or ""
        if len(content) > HIT_CONTENT_CHARS:
            d["content"] = content[:HIT_CONTENT_CHARS] + "\n…"
        rows.append(d)
    lines = [headline]
    for d in rows:
        sym = f" {d.get('symbol')}" if d.get("symbol") else ""
        lines.append(f"{d['path']}:{d['start_line']}-{d['end_line']}{sym} (score {d['score']:.3f})")
    return {"hits": rows, "count": len(rows)}, "\n".join(lines)


# --------------------------------------------------------------------------- index jobs

class JobManager:
    """Index runs as ``python -m codesift index`` subprocesses, one at a time."""

    def __init__(self, service: CodesiftService, timeout_s: float) -> None:
        self.service = service
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._jobs: dict[str, dict] = {}
        self._procs: dict[str, Any] = {}

    def _running(self) -> dict | None:
        for job in self._jobs.values():
            if job["state"] == "running":
                return job
        return None

    def current(self) -> dict | None:
        with self._lock:
            job = self._running()
            return self._public(job) if job else None

    def start(self, full: bool) -> tuple[dict, bool]:
        import subprocess

        from ..store.layout import IndexLayout
        from ..store.lock import WriterLock

        with self._lock:
            running = self._running()
            if running is not None:
                return self._public(running), True
            svc = self.service
            layout = IndexLayout(svc.index_dir)
            wait = None
            lock = WriterLock(layout.lock)
            if layout.lock.exists() and lock.is_held_elsewhere():
                pid = lock.holder_pid()
                if pid == os.getpid():
                    wait = "600"  # our own watch cycle: queue behind it
                else:
                    who = f"pid {pid}" if pid else "another process"
                    raise ToolError("locked", f"the index is locked by {who} (another codesift index is "
                                              f"running); try again when it has finished", pid=pid)
            job_id = uuid.uuid4().hex[:12]
            workdir = Path(tempfile.mkdtemp(prefix=f"codesift-job-{job_id}-"))
            argv = [sys.executable, "-m", "codesift", "index", str(svc.root), "--index-dir", str(svc.index_dir),
                    "--json"]
            from ..watching.loop import index_embedder_spec

            spec = svc.embedder_option or index_embedder_spec(svc.index_dir)
            if spec:
                argv += ["--embedder", spec]
            if full:
                argv.append("--full")
            if wait:
                argv += ["--wait", wait]
            out = open(workdir / "stdout.json", "wb")
            err = open(workdir / "stderr.log", "wb")
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True, close_fds=True)
            except OSError as exc:
                raise ToolError("failed", f"cannot start the index job: {exc}") from exc
            finally:
                out.close()
                err.close()
            job = {"job_id": job_id, "state": "running", "full": full, "pid": proc.pid,
                   "started_at": time.time(), "finished_at": None, "exit_code": None, "summary": None,
                   "error": None, "_dir": workdir, "_t0": time.monotonic()}
            self._jobs[job_id] = job
            self._procs[job_id] = proc
            while len(self._jobs) > JOBS_KEPT:
                oldest = next(j for j in self._jobs.values() if j["state"] != "running")
                self._jobs.pop(oldest["job_id"], None)
            threading.Thread(target=self._wait, args=(job_id,), name=f"job-{job_id}", daemon=True).start()
            log.info("index job %s started (pid %d): %s", job_id, proc.pid, " ".join(argv[2:]))
            return self._public(job), False

    def _wait(self, job_id: str) -> None:
        import subprocess

        proc = self._procs[job_id]
        job = self._jobs[job_id]
        try:
            code = proc.wait(timeout=self.timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            code = _stop_process(proc, 10.0)
        summary, error = None, None
        try:
            text = (job["_dir"] / "stdout.json").read_text()
            summary = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            summary = None
        stderr = ""
        try:
            stderr = (job["_dir"] / "stderr.log").read_text(errors="replace")
        except OSError:
            pass
        if timed_out:
            error = f"the index job ran past its {self.timeout_s:g}s limit and was stopped"
        elif code != 0:
            msgs = [ln for ln in stderr.splitlines() if ln.startswith("codesift: error:")]
            if msgs:
                error = msgs[-1].removeprefix("codesift: error:").strip()
            elif summary and summary.get("error"):
                error = summary["error"].get("message")
            else:
                tail = [ln for ln in stderr.splitlines() if ln.strip()]
                error = tail[-1] if tail else f"exited with status {code}"
        with self._lock:
            job.update(state="failed" if (timed_out or code != 0) else "succeeded", exit_code=code,
                       finished_at=time.time(), summary=summary, error=error,
                       stderr_tail=stderr[-2000:] if code != 0 else "")
            self._procs.pop(job_id, None)
        try:
            for f in job["_dir"].iterdir():
                f.unlink()
            job["_dir"].rmdir()
        except OSError:
            pass
        log.info("index job %s finished: %s%s", job_id, job["state"], f" ({error})" if error else "")

    def _progress(self, job: dict) -> dict | None:
        from ..pipeline.telemetry import read_live_status
        from ..store.layout import IndexLayout

        live = read_live_status(IndexLayout(self.service.index_dir).live_status)
        if not live or live.get("pid") != job["pid"]:
            return None
        files = live.get("files") or {}
        chunks = live.get("chunks") or {}
        return {"files_seen": files.get("seen"), "files_to_index": files.get("to_index"),
                "files_indexed": files.get("indexed"), "files_unchanged": files.get("unchanged"),
                "files_deleted": files.get("deleted"), "chunks_embedded": chunks.get("embedded"),
                "chunks_written": chunks.get("written"), "state": live.get("state"),
                "updated_at": live.get("updated_at")}

    def _public(self, job: dict) -> dict:
        out = {k: v for k, v in job.items() if not k.startswith("_")}
        out["duration_s"] = round((job["finished_at"] or time.time()) - job["started_at"], 3)
        if job["state"] == "running":
            out["progress"] = self._progress(job)
        return out

    def status(self, job_id: str) -> dict:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                known = ", ".join(self._jobs) or "none"
                raise ToolError("unknown_job", f"unknown job id {job_id!r} (jobs of this server: {known})",
                                job_id=job_id)
            return self._public(job)

    def stop_all(self, timeout_s: float) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _stop_process(proc, timeout_s)


def _stop_process(proc, timeout_s: float) -> int:
    """SIGINT (the run commits what is complete), then SIGKILL after ``timeout_s``."""
    import signal
    import subprocess

    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGINT)
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
        except OSError:
            pass
    try:
        return proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        return -9


# --------------------------------------------------------------------------- running a call

def run_tool(service: CodesiftService, name: str, arguments: Any, timeout_s: float | None = None) -> dict:
    """One tools/call as an MCP ``CallToolResult`` dict, under a deadline; never raises."""
    timeout_s = service.tool_timeout_s if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    box: dict = {}

    def target() -> None:
        try:
            box["ok"] = service.call(name, arguments, deadline)
        except ToolError as exc:
            box["err"] = exc
        except BaseException as exc:  # noqa: BLE001
            log.exception("tool %s crashed", name)
            box["err"] = ToolError("internal_error", f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=target, name=f"tool-{name}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        err = ToolError("timeout", f"{name} did not finish within its {timeout_s:g}s deadline; it may still "
                                   f"be loading the model or waiting for the index: try again")
        return _error_result(err)
    if "err" in box:
        return _error_result(box["err"])
    structured, text = box["ok"]
    return {"content": [{"type": "text", "text": text}], "structuredContent": structured, "isError": False}


def _error_result(err: ToolError) -> dict:
    return {"content": [{"type": "text", "text": f"error ({err.code}): {err.message}"}],
            "structuredContent": {"error": err.as_dict()}, "isError": True}


# --------------------------------------------------------------------------- stdio transport

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603


class StdioServer:
    """JSON-RPC 2.0, one message per line, over the given binary streams."""

    def __init__(self, service: CodesiftService, rfile, wfile, *, version: str = "0") -> None:
        self.service = service
        self.rfile = rfile
        self.wfile = wfile
        self.version = version
        self._write_lock = threading.Lock()
        self._cancelled: set = set()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_CALLS)
        self._inflight: set[threading.Thread] = set()
        self._inflight_lock = threading.Lock()
        self.initialized_at: float | None = None

    def send(self, message: dict) -> None:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        with self._write_lock:
            try:
                self.wfile.write(data)
                self.wfile.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass

    def _reply(self, rid, result: dict | None = None, error: tuple[int, str] | None = None) -> None:
        if rid in self._cancelled:
            self._cancelled.discard(rid)
            return
        if error is not None:
            self.send({"jsonrpc": "2.0", "id": rid, "error": {"code": error[0], "message": error[1]}})
        else:
            self.send({"jsonrpc": "2.0", "id": rid, "result": result})

    def serve(self) -> None:
        for raw in iter(self.rfile.readline, b""):
            line = raw.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                self.send({"jsonrpc": "2.0", "id": None, "error": {"code": PARSE_ERROR, "message": "parse error"}})
                continue
            if isinstance(msg, list):
                self.send({"jsonrpc": "2.0", "id": None,
                           "error": {"code": INVALID_REQUEST, "message": "batches are not supported"}})
                continue
            if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
                self.send({"jsonrpc": "2.0", "id": msg.get("id") if isinstance(msg, dict) else None,
                           "error": {"code": INVALID_REQUEST, "message": "not a JSON-RPC 2.0 message"}})
                continue
            self.handle(msg)
        self.drain(self.service.tool_timeout_s + 1.0)

    def drain(self, timeout_s: float) -> None:
        """Wait (bounded) for the calls in flight to answer, e.g. after stdin closed."""
        deadline = time.monotonic() + timeout_s
        with self._inflight_lock:
            threads = list(self._inflight)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def handle(self, msg: dict) -> None:
        method = msg.get("method")
        rid = msg.get("id")
        params = msg.get("params") or {}
        if method is None:
            return  # a response to something we never send: ignore
        if "id" not in msg:  # a notification
            if method == "notifications/cancelled" and isinstance(params, dict):
                self._cancelled.add(params.get("requestId"))
            return
        if not isinstance(params, dict):
            self._reply(rid, error=(INVALID_PARAMS, "params must be an object"))
            return
        if method == "initialize":
            self._reply(rid, self._initialize(params))
        elif method == "ping":
            self._reply(rid, {})
        elif method == "tools/list":
            self._reply(rid, {"tools": TOOLS})
        elif method == "tools/call":
            name = params.get("name")
            if not isinstance(name, str) or name not in TOOL_NAMES:
                self._reply(rid, error=(INVALID_PARAMS, f"unknown tool {name!r}; tools: "
                                                        f"{', '.join(sorted(TOOL_NAMES))}"))
                return
            t = threading.Thread(target=self._call, args=(rid, name, params.get("arguments")),
                                 name=f"call-{rid}", daemon=True)
            with self._inflight_lock:
                self._inflight.add(t)
            t.start()
        elif method in ("resources/list", "prompts/list", "resources/templates/list"):
            self._reply(rid, error=(METHOD_NOT_FOUND, f"{method}: this server offers tools only"))
        elif method == "logging/setLevel":
            self._reply(rid, {})
        else:
            self._reply(rid, error=(METHOD_NOT_FOUND, f"method not found: {method}"))

    def _initialize(self, params: dict) -> dict:
        asked = params.get("protocolVersion")
        version = asked if asked in HANDSHAKE_VERSIONS else LATEST_VERSION
        self.initialized_at = time.monotonic()
        return {"protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}, "logging": {}},
                "serverInfo": {"name": SERVER_NAME, "title": "codesift code search", "version": self.version},
                "instructions": INSTRUCTIONS}

    def _call(self, rid, name: str, arguments: Any) -> None:
        timeout = self.service.tool_timeout_s
        t0 = time.monotonic()
        if not self._slots.acquire(timeout=timeout):
            self._reply(rid, _error_result(ToolError("busy", "too many calls in flight; try again")))
            return
        try:
            result = run_tool(self.service, name, arguments, max(0.1, timeout - (time.monotonic() - t0)))
        finally:
            self._slots.release()
        self._reply(rid, result)
        with self._inflight_lock:
            self._inflight.discard(threading.current_thread())


def serve_stdio(service: CodesiftService, *, version: str) -> None:
    """Serve on this process's stdin/stdout until stdin closes."""
    proto_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    # Anything else written to fd 1 (a stray print, a native library) goes to stderr.
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    proto_in = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
    server = StdioServer(service, proto_in, proto_out, version=version)
    server.serve()


# --------------------------------------------------------------------------- HTTP transport

def serve_http(service: CodesiftService, *, host: str, port: int, version: str) -> None:
    """Streamable HTTP at http://HOST:PORT/mcp with the official SDK."""
    import anyio
    import mcp_types as types
    import uvicorn
    from mcp.server.lowlevel import Server

    tools = [types.Tool.model_validate(t) for t in TOOLS]

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx, params) -> types.CallToolResult:
        result = await anyio.to_thread.run_sync(
            lambda: run_tool(service, params.name, params.arguments), abandon_on_cancel=True)
        return types.CallToolResult.model_validate(result)

    server = Server(SERVER_NAME, version=version, instructions=INSTRUCTIONS,
                    on_list_tools=list_tools, on_call_tool=call_tool)
    app = server.streamable_http_app(host=host)
    print(f"codesift: MCP server listening on http://{host}:{port}/mcp", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
