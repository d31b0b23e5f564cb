"""The tools over one or more repositories, independent of the protocol.

:class:`CodesiftService` checks arguments, calls the searcher / status / job manager, and
returns ``(structured result, text rendering)``; a call that cannot succeed raises
:class:`ToolError`. :func:`run_tool` wraps one call as an MCP ``CallToolResult`` under a
deadline and a :class:`Call` that the client can cancel: the work checks it between
steps (waiting for the search lock, after embedding the query, between repositories,
during the freshness scan) and stops there.

Every search result carries the coverage of each repository searched (complete or not,
stale files, files pending, the last run, a running job), read through the public
inspection functions, so an agent can tell "no such code" from "not indexed yet".
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from .arguments import bool_arg, check_arguments, int_arg, str_arg, str_list_arg
from .errors import CallCancelled, ToolError
from .jobs import JobManager
from .schemas import (
    HIT_CONTENT_CHARS, MAX_K, MAX_QUERY_CHARS, MAX_READ_BYTES, MAX_READ_LINES, MODES, TOOL_NAMES, TOOLS_BY_NAME,
)

log = logging.getLogger("codesift.mcp")

DEFAULT_TOOL_TIMEOUT_S = 30.0
DEFAULT_JOB_TIMEOUT_S = 3600.0
MAX_CONCURRENT_CALLS = 4
STALE_CAP = 200
STALE_SCAN_S = 5.0         # index_status: how long the freshness walk may take
SEARCH_STALE_SCAN_S = 1.0  # search results: a shorter budget (stale_checked=false past it)
COVERAGE_TTL_S = 5.0       # a freshness scan is reused this long while the index is unchanged
LOCK_POLL_S = 0.05


class Call:
    """One tool call's deadline and cancellation, checked by the work between steps."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self._cancelled = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled by the client") -> None:
        if not self._cancelled.is_set():
            self.reason = reason
            self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """Raise :class:`CallCancelled` once the call is cancelled or past its deadline."""
        if self._cancelled.is_set():
            raise CallCancelled(self.reason)
        if time.monotonic() > self.deadline:
            raise CallCancelled("past its deadline")

    def acquire(self, lock, what: str) -> None:
        """Take ``lock``, giving up when the call is cancelled or out of time."""
        while not lock.acquire(timeout=min(LOCK_POLL_S, max(0.001, self.remaining()))):
            self.check()
            if self.remaining() <= 0:
                raise ToolError("timeout", f"{what} did not become free before the call's deadline")


class Repo:
    """One served repository: its root, its index, and what the server keeps open for it."""

    def __init__(self, name: str, root: Path, index_dir: Path, watcher=None) -> None:
        self.name = name
        self.root = Path(root)
        self.real_root = Path(os.path.realpath(self.root))
        self.index_dir = Path(index_dir)
        self.watcher = watcher
        self.searcher = None
        self.searcher_key: tuple | None = None
        self.stale_cache: tuple | None = None  # (index key, monotonic time, stale dict)
        self.status_cache: tuple | None = None  # (status key, monotonic time, collect_status report)

    def index_key(self) -> tuple:
        """Changes whenever an index run commits (see :func:`search.engine.index_key`)."""
        from ...search.engine import index_key

        return index_key(self.index_dir)


def _file_key(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def repo_names(roots: list[Path]) -> list[str]:
    """Short, unique names for the roots: the directory name, suffixed on a clash."""
    names: list[str] = []
    for root in roots:
        base = Path(root).name or "root"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


class CodesiftService:
    """The six tools over the served repositories (thread-safe)."""

    def __init__(self, repos: list[Repo], *, embedder: str | None = None,
                 tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S, job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S) -> None:
        if not repos:
            raise ValueError("at least one repository")
        self.repos = {r.name: r for r in repos}
        self.embedder_option = embedder
        self.tool_timeout_s = tool_timeout_s
        self.jobs = JobManager(embedder, job_timeout_s)
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT_CALLS)
        self._search_lock = threading.Lock()  # the table handles and the loaded model are shared
        self._embedders: dict[str, Any] = {}

    # -- dispatch -------------------------------------------------------------------------
    def call(self, name: str, arguments: Any, call: Call) -> tuple[dict, str]:
        """Run one tool: (structured result, text rendering); raises ToolError or CallCancelled."""
        tool = TOOLS_BY_NAME.get(name)
        if tool is None:
            raise ToolError("invalid_arguments", f"unknown tool {name!r}; tools: {', '.join(sorted(TOOL_NAMES))}")
        args = check_arguments(arguments, tool)
        handler = getattr(self, "tool_" + name)
        try:
            return handler(args, call)
        except (ToolError, CallCancelled):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a tool error with a code
            raise _translate(exc, name) from exc

    def _repo(self, args: dict) -> Repo:
        name = args.get("repo")
        if name is None:
            if len(self.repos) == 1:
                return next(iter(self.repos.values()))
            raise ToolError("invalid_arguments", f"repo is required: this server serves {self._names()}")
        if not isinstance(name, str) or name not in self.repos:
            raise ToolError("unknown_repo", f"unknown repo {name!r}; this server serves {self._names()}")
        return self.repos[name]

    def _names(self) -> str:
        return ", ".join(self.repos)

    def _repo_hint(self, repo: Repo) -> str:
        return f" with repo={repo.name!r}" if len(self.repos) > 1 else ""

    # -- search ---------------------------------------------------------------------------
    def _searcher(self, repo: Repo):
        """A searcher over the index as it is now; reopened after each commit, the loaded
        embedder kept (the model loads once per process)."""
        key = repo.index_key()
        if repo.searcher is None or key != repo.searcher_key:
            from ...search.engine import reopen_searcher

            repo.searcher, repo.searcher_key = reopen_searcher(repo.root, repo.index_dir, self._embedders), key
        return repo.searcher

    def _remember_embedder(self, searcher) -> None:
        from ...search.engine import remember_embedder

        remember_embedder(searcher, self._embedders)

    def tool_search_code(self, args: dict, call: Call) -> tuple[dict, str]:
        query = str_arg(args, "query", max_len=MAX_QUERY_CHARS)
        k = int_arg(args, "k", 10, 1, MAX_K)
        mode = args.get("mode", "hybrid")
        if mode not in MODES:
            raise ToolError("invalid_arguments", f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        filters: dict[str, Any] = {}
        if languages := str_list_arg(args, "languages"):
            filters["lang"] = languages
        if paths := str_list_arg(args, "paths"):
            filters["path"] = paths
        wanted = str_list_arg(args, "repos")
        unknown = [r for r in wanted if r not in self.repos]
        if unknown:
            raise ToolError("unknown_repo", f"unknown repo(s) {', '.join(map(repr, unknown))}; this server "
                                            f"serves {self._names()}")
        targets = [self.repos[r] for r in dict.fromkeys(wanted)] if wanted else list(self.repos.values())
        from ...errors import NoIndexError

        hits: list[dict] = []
        missing: list[Repo] = []
        for repo in targets:
            call.check()
            try:
                found = self._search_one(repo, call, lambda s: s.search(query, k=k, mode=mode, **filters))
            except NoIndexError:
                missing.append(repo)  # its coverage says so; the other repositories are still searched
                continue
            hits.extend(_hit_dict(h, repo.name) for h in found)
        if len(missing) == len(targets):
            names = ", ".join(r.name for r in missing)
            raise ToolError("no_index", f"nothing is indexed yet in {names}", repos=[r.name for r in missing])
        hits.sort(key=lambda h: -h["score"])
        return self._hits_result(hits[:k], targets, call, f"{min(len(hits), k)} hit(s) for {query!r}")

    def _search_one(self, repo: Repo, call: Call, run) -> list:
        call.acquire(self._search_lock, "the search lock (another search is running)")
        try:
            call.check()
            searcher = self._searcher(repo)
            try:
                return run(searcher)
            finally:
                self._remember_embedder(searcher)
        finally:
            self._search_lock.release()

    def tool_find_similar(self, args: dict, call: Call) -> tuple[dict, str]:
        repo = self._repo(args)
        path = str_arg(args, "path")
        line = int_arg(args, "line", None, 1)
        k = int_arg(args, "k", 10, 1, MAX_K)
        rel, _ = self._relpath(repo, path)
        from ...errors import CodesiftError

        try:
            found = self._search_one(repo, call, lambda s: s.similar(rel, line, k=k))
        except CodesiftError as exc:
            if type(exc) is CodesiftError:  # the searcher's refusal of a location it has no chunk for
                raise ToolError("not_indexed", exc.one_line(), path=rel, line=line) from exc
            raise
        hits = [_hit_dict(h, repo.name) for h in found]
        return self._hits_result(hits, [repo], call, f"{len(hits)} chunk(s) similar to {rel}:{line}")

    def _hits_result(self, hits: list[dict], repos: list[Repo], call: Call, headline: str) -> tuple[dict, str]:
        call.check()
        coverage = [self.coverage(r, call, SEARCH_STALE_SCAN_S) for r in repos]
        complete = all(c["complete"] for c in coverage)
        lines = [headline]
        many = len(self.repos) > 1
        for d in hits:
            sym = f" {d.get('symbol')}" if d.get("symbol") else ""
            where = f"{d['repo']}:" if many else ""
            lines.append(f"{where}{d['path']}:{d['start_line']}-{d['end_line']}{sym} (score {d['score']:.3f})")
        for c in coverage:
            if not c["complete"]:
                lines.append(f"coverage of {c['repo']} incomplete: {c['advice']}")
        return {"hits": hits, "count": len(hits), "complete": complete, "coverage": coverage}, "\n".join(lines)

    # -- coverage and freshness -------------------------------------------------------------
    def coverage(self, repo: Repo, call: Call | None, scan_s: float) -> dict:
        """How complete and fresh ``repo``'s index is (see the ``coverage`` output schema)."""
        from ...errors import CodesiftError, NoIndexError

        job = self.jobs.current(repo.name)
        hint = self._repo_hint(repo)
        unknown = {"repo": repo.name, "exists": False, "complete": False, "files_indexed": 0, "chunks": 0,
                   "stale_files": None, "stale_checked": False, "pending_files": 0, "indexing": job is not None,
                   "job_id": job["job_id"] if job else None, "last_run": None}
        try:
            report = self._status(repo)
            stale = self.stale(repo, call, scan_s)
            seen = self._searcher(repo).coverage()
        except NoIndexError:
            return {**unknown,
                    "advice": f"Nothing is indexed in {repo.name} yet: call reindex{hint}, then poll job_status."}
        except (CodesiftError, OSError) as exc:
            # The hits stand; only their coverage is unknown, and the result says why.
            reason = exc.one_line() if isinstance(exc, CodesiftError) else f"{type(exc).__name__}: {exc}"
            log.warning("coverage of %s not read: %s", repo.name, reason)
            return {**unknown, "exists": True,
                    "advice": f"The index status could not be read ({reason}): report this to the user."}
        last = report["last_run"] or {}
        indexing = bool(report["running"]) or job is not None
        pending = report["pending_total"]
        checked = stale["complete"]
        advice = None
        if indexing:
            advice = "An index run is in progress: poll job_status (or index_status) and search again once it ends."
        elif last.get("status") == "failed":
            advice = (f"The last index run failed ({last.get('error') or 'no message'}): report this to the user; "
                      f"a reindex{hint} completes the index once the cause is fixed.")
        elif last.get("status") not in (None, "ok"):
            advice = f"The last index run ended {last.get('status')}: call reindex{hint} to complete the index."
        elif pending:
            advice = f"{pending} file(s) were left half-indexed by an interrupted run: call reindex{hint}."
        elif stale["total"]:
            advice = (f"{stale['total']} file(s) changed since they were indexed: call reindex{hint}, "
                      f"then poll job_status.")
        elif not checked:
            advice = "Freshness could not be checked in time: call index_status for the full picture."
        return {
            "repo": repo.name, "exists": True, "complete": advice is None,
            "files_indexed": report["files"].get("indexed", 0), "chunks": report["chunks"],
            "stale_files": stale["total"] if checked else None, "stale_checked": checked,
            "pending_files": pending, "searchable_chunks": seen["chunks"], "vectors": seen["vectors"],
            "indexing": indexing, "job_id": job["job_id"] if job else None,
            "last_run": {"status": last.get("status"), "finished_at": last.get("finished_at"),
                         "error": last.get("error")} if last else None,
            "advice": advice,
        }

    @staticmethod
    def _status(repo: Repo) -> dict:
        """The index status (:func:`inspection.status.collect_status`), reused for :data:`COVERAGE_TTL_S` while neither the
        manifest nor a run's live status file changed: it sizes the index on disk and reads
        every file's row (5 ms at 562 files, the largest part of a warm search's coverage)."""
        from ...inspection.status import collect_status
        from ...store.layout import IndexLayout

        key = (repo.index_key(), _file_key(IndexLayout(repo.index_dir).live_status))
        cached = repo.status_cache
        if cached and cached[0] == key and time.monotonic() - cached[1] < COVERAGE_TTL_S:
            return cached[2]
        report = collect_status(repo.root, repo.index_dir)
        repo.status_cache = (key, time.monotonic(), report)
        return report

    def stale(self, repo: Repo, call: Call | None, scan_s: float) -> dict:
        """Files whose state differs from the manifest (a walk and stats, no reads), reused
        for :data:`COVERAGE_TTL_S` while the index is unchanged."""
        key = repo.index_key()
        cached = repo.stale_cache
        if cached and cached[0] == key and time.monotonic() - cached[1] < COVERAGE_TTL_S and cached[2]["complete"]:
            return cached[2]
        deadline = time.monotonic() + scan_s
        if call is not None:
            deadline = min(deadline, call.deadline)
        result = _scan_stale(repo, deadline, call)
        repo.stale_cache = (key, time.monotonic(), result)
        return result

    # -- read -----------------------------------------------------------------------------
    def _relpath(self, repo: Repo, path: str) -> tuple[str, Path]:
        """``path`` (relative to the repository root) as (POSIX relative path, real absolute
        path); refuses anything that leads outside that root."""
        if "\x00" in path:
            raise ToolError("invalid_arguments", "path must not contain NUL characters")
        p = Path(path)
        if p.is_absolute() or path.startswith("~"):
            raise ToolError("path_outside_root", f"path must be relative to the repository root, got {path!r}",
                            path=path)
        parts = [x for x in p.parts if x not in ("", ".")]
        if ".." in parts:
            raise ToolError("path_outside_root", f"path must not contain '..': {path!r}", path=path)
        full = Path(os.path.realpath(repo.real_root.joinpath(*parts))) if parts else repo.real_root
        try:
            full.relative_to(repo.real_root)
        except ValueError:
            raise ToolError("path_outside_root", f"{path!r} leads outside the repository root (symlink)",
                            path=path) from None
        return "/".join(parts), full

    def tool_read_code(self, args: dict, call: Call) -> tuple[dict, str]:
        repo = self._repo(args)
        path = str_arg(args, "path")
        start = int_arg(args, "start_line", 1, 1)
        end = int_arg(args, "end_line", None, 1)
        if end is not None and end < start:
            raise ToolError("invalid_arguments", f"end_line ({end}) must be >= start_line ({start})")
        rel, full = self._relpath(repo, path)
        if not full.exists():
            raise ToolError("not_found", f"no such file in {repo.name}: {rel}", path=rel)
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
        result = {"repo": repo.name, "path": rel, "start_line": start, "end_line": max(stop, start) if out else start,
                  "total_lines": total, "truncated": truncated, "content": "\n".join(out)}
        note = ""
        if end is not None and end > total:
            note = f" (end_line {end} clamped to the end of the file)"
        if truncated:
            note += f" (truncated; continue at start_line {stop + 1})"
        text = f"{rel}:{start}-{result['end_line']} of {total} lines{note}\n" + "\n".join(
            f"{n:>6}  {s}" for n, s in enumerate(out, start))
        return result, text

    # -- status ---------------------------------------------------------------------------
    def tool_index_status(self, args: dict, call: Call) -> tuple[dict, str]:
        repos = [self._repo(args)] if args.get("repo") is not None else list(self.repos.values())
        out, lines = [], []
        for repo in repos:
            call.check()
            entry, text = self._repo_status(repo, call)
            out.append(entry)
            lines.append(text)
        result = {"exists": all(e["exists"] for e in out), "complete": all(e["coverage"]["complete"] for e in out),
                  "repos": out}
        return result, "\n\n".join(lines)

    def _repo_status(self, repo: Repo, call: Call) -> tuple[dict, str]:
        from ...errors import NoIndexError
        from ...inspection.status import collect_status

        coverage = self.coverage(repo, call, STALE_SCAN_S)
        job = self.jobs.current(repo.name)
        watching = repo.watcher.describe() if repo.watcher is not None else None
        base = {"repo": repo.name, "root": str(repo.root), "index_dir": str(repo.index_dir), "job": job,
                "watch": watching, "coverage": coverage}
        try:
            report = collect_status(repo.root, repo.index_dir)
        except NoIndexError:
            return {**base, "exists": False}, f"{repo.name}: no index at {repo.index_dir}; {coverage['advice']}"
        stale = self.stale(repo, call, STALE_SCAN_S)
        files = report["files"]
        entry = {
            **base, "exists": True, "embedder": report["embedder"],
            "files": {"indexed": files.get("indexed", 0), "skipped": files.get("skipped", 0),
                      "error": files.get("error", 0)},
            "chunks": report["chunks"], "languages": report["languages"],
            "index_size_bytes": report["index_size_bytes"], "last_run": report["last_run"],
            "skipped": report["skipped"], "skipped_total": report["skipped_total"], "stale": stale,
            "pending_total": report["pending_total"], "running": report["running"],
        }
        last = report["last_run"] or {}
        lines = [
            f"{repo.name}: index of {report['root']} ({report['embedder'].get('name') or '-'})",
            f"files: {files.get('indexed', 0)} indexed, {files.get('skipped', 0)} skipped, "
            f"{files.get('error', 0)} errors; {report['chunks']} chunks",
            f"last run: {last.get('status') or 'none'}" + (f", error: {last['error']}" if last.get("error") else ""),
            f"stale: {stale['total']} file(s)" + ("" if stale["complete"] else " (scan incomplete)"),
            "complete" if coverage["complete"] else f"incomplete: {coverage['advice']}",
        ]
        if job:
            lines.append(f"job {job['job_id']}: {job['state']}")
        return entry, "\n".join(lines)

    # -- jobs -----------------------------------------------------------------------------
    def tool_reindex(self, args: dict, call: Call) -> tuple[dict, str]:
        repo = self._repo(args)
        full = bool_arg(args, "full", False)
        job, reused = self.jobs.start(repo, full)
        result = {"job_id": job["job_id"], "repo": repo.name, "state": job["state"], "reused": reused,
                  "full": job["full"]}
        if call.cancelled and not reused:
            # The client gave up on the call before it was answered: it will never learn the
            # job id, so the job is stopped the way any job is stopped.
            self.jobs.stop(job["job_id"], "the reindex call was cancelled")
        verb = "already running" if reused else "started"
        return result, f"index job {job['job_id']} for {repo.name} {verb}; poll job_status"

    def tool_job_status(self, args: dict, call: Call) -> tuple[dict, str]:
        job_id = str_arg(args, "job_id", max_len=200)
        job = self.jobs.status(job_id)
        text = f"job {job_id} ({job['repo']}): {job['state']}"
        p = job.get("progress") or {}
        if job["state"] == "running" and p:
            text += f" ({p.get('files_indexed') or 0}/{p.get('files_to_index') or 0} files)"
        if job.get("error"):
            text += f": {job['error']['message']} -> {job['error']['action']}"
        elif job.get("summary"):
            s = job["summary"]
            f = s.get("files") or {}
            text += (f": {f.get('indexed')} indexed, {f.get('unchanged')} unchanged, "
                     f"{f.get('deleted')} deleted in {s.get('duration_s')}s")
        return job, text

    def close(self, timeout_s: float) -> None:
        """Stop every job (SIGINT, then harder past its deadline) and wait for them."""
        self.jobs.stop_all("the MCP server is shutting down", timeout_s)


# --------------------------------------------------------------------------- helpers

def _translate(exc: Exception, tool: str) -> ToolError:
    from ...errors import CodesiftError, ConfigError, EmbedderMismatchError, NoIndexError

    if isinstance(exc, NoIndexError):
        return ToolError("no_index", exc.one_line())
    if isinstance(exc, EmbedderMismatchError):
        return ToolError("embedder_mismatch", exc.one_line())
    if isinstance(exc, ConfigError):
        return ToolError("invalid_arguments", exc.one_line())
    if isinstance(exc, CodesiftError):
        return ToolError("search_failed", exc.one_line())
    log.error("tool %s failed", tool, exc_info=exc)
    return ToolError("internal_error", f"{type(exc).__name__}: {exc}")


def _hit_dict(hit, repo: str) -> dict:
    d = hit.as_dict() if hasattr(hit, "as_dict") else dict(hit)
    d.pop("id", None)
    content = d.get("content") or ""
    if len(content) > HIT_CONTENT_CHARS:
        d["content"] = content[:HIT_CONTENT_CHARS] + "\n…"
    return {"repo": repo, **d}


def _scan_stale(repo: Repo, deadline: float, call: Call | None) -> dict:
    from ...config import DEFAULT_MAX_FILE_SIZE
    from ...discovery import discover
    from ...inspection._common import open_manifest
    from ...models import FileEntry
    from ...store.layout import IndexLayout

    m = open_manifest(IndexLayout(repo.index_dir))
    try:
        known = {r.path: r for r in m.iter_files()}
    finally:
        m.close()
    new, modified, seen = [], [], set()
    complete = True
    n_new = n_mod = 0
    for item in discover(repo.root, index_dir=repo.index_dir, max_file_size=DEFAULT_MAX_FILE_SIZE):
        if call is not None:
            call.check()
        if time.monotonic() > deadline:
            complete = False
            break
        seen.add(item.path)
        prev = known.get(item.path)
        if not isinstance(item, FileEntry):
            if prev is None or prev.status == "skipped":
                continue  # a skip the next run records; nothing to search either way
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


# --------------------------------------------------------------------------- one call

def run_tool(service: CodesiftService, name: str, arguments: Any, call: Call) -> dict | None:
    """One tools/call as an MCP ``CallToolResult`` dict; None when the call was cancelled
    (the client no longer waits for it). Never raises."""
    box: dict = {}

    def target() -> None:
        try:
            if not _acquire_slot(service, call):
                box["err"] = ToolError("busy", f"{MAX_CONCURRENT_CALLS} calls are already running")
                return
            try:
                box["ok"] = service.call(name, arguments, call)
            finally:
                service.slots.release()
        except ToolError as exc:
            box["err"] = exc
        except CallCancelled as exc:
            box["cancelled"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug still answers the call, with its name
            log.error("tool %s crashed", name, exc_info=exc)
            box["err"] = ToolError("internal_error", f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=target, name=f"tool-{name}", daemon=True)
    t.start()
    t.join(call.remaining() + 0.05)
    if t.is_alive() and not call.cancelled:
        # Past the deadline: tell the work to stop at its next check, and answer now.
        call.cancel("past its deadline")
        return error_result(ToolError("timeout", f"{name} did not finish within its {call.timeout_s:g}s deadline"))
    if call.cancelled or "cancelled" in box:
        log.info("%s stopped: %s", name, call.reason or box.get("cancelled"))
        if not call.cancelled:  # stopped by its own deadline check: the client still waits
            return error_result(ToolError("timeout", f"{name} did not finish within its {call.timeout_s:g}s "
                                                     f"deadline"))
        return None
    if "err" in box:
        return error_result(box["err"])
    structured, text = box["ok"]
    return {"content": [{"type": "text", "text": text}], "structuredContent": structured, "isError": False}


def _acquire_slot(service: CodesiftService, call: Call) -> bool:
    while not service.slots.acquire(timeout=min(LOCK_POLL_S, max(0.001, call.remaining()))):
        call.check()
        if call.remaining() <= 0:
            return False
    return True


def error_result(err: ToolError) -> dict:
    """An error result every client accepts: ``isError`` and the error as JSON text, with no
    ``structuredContent`` (clients validate that against the tool's output schema)."""
    return {"content": [{"type": "text", "text": json.dumps({"error": err.as_dict()}, ensure_ascii=False)}],
            "isError": True}
