"""Index jobs: ``codesift index`` runs in subprocesses that the MCP server owns.

* One job per repository at a time (a second ``reindex`` returns the running one).
* A job is stopped through the pipeline's own shutdown path: SIGINT (the run stops
  intake, commits what is complete and exits within its ``--shutdown-timeout``), then,
  past that deadline, SIGTERM (the run's "second signal": it leaves at once, the
  journal keeps the index consistent), then SIGKILL. Every wait has a deadline.
* The outcome comes from the run's JSON summary on stdout (:mod:`.index_job` prints one
  even when the run is refused before it starts), never from scraping stderr; stderr is
  kept only as a diagnostic tail.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ToolError

if TYPE_CHECKING:
    from .service import Repo

log = logging.getLogger("codesift.mcp")

JOBS_KEPT = 20
JOB_SHUTDOWN_S = 10.0  # the run's own --shutdown-timeout
STOP_GRACE_S = 5.0     # on top of it, before the next, harder signal
LOCK_QUEUE_S = "600"   # our own watcher holds the lock: queue behind its cycle

# Codes of a job's error, in the same family as tool errors (the actions are for agents).
JOB_ACTIONS = {
    "index_failed": "Report the message to the user; the index keeps what it had, and reindex redoes the rest.",
    "interrupted": "Call reindex to finish the run; what was complete has been kept.",
    "job_timeout": "Ask the user to raise --job-timeout, then call reindex to finish; what was complete is kept.",
    "locked": "Another codesift process is writing this index; call reindex once index_status no longer shows it.",
    "embedder_mismatch": "Call reindex with full=true to rebuild the index with the embedder in use.",
    "invalid_arguments": "Ask the user to fix the server's index options (the message names the bad one).",
    "index_crashed": "Report the message and stderr_tail to the user; reindex resumes where the run stopped.",
}
_KIND_CODES = {"IndexLockedError": "locked", "EmbedderMismatchError": "embedder_mismatch",
               "ConfigError": "invalid_arguments"}


class JobManager:
    """Index runs as subprocesses, at most one per repository."""

    def __init__(self, embedder: str | None, timeout_s: float) -> None:
        self.embedder_option = embedder
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._jobs: dict[str, dict] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._waiters: dict[str, threading.Thread] = {}

    def _running(self, repo: str) -> dict | None:
        for job in self._jobs.values():
            if job["state"] == "running" and job["repo"] == repo:
                return job
        return None

    def current(self, repo: str) -> dict | None:
        with self._lock:
            job = self._running(repo)
            return self._public(job) if job else None

    def start(self, repo: Repo, full: bool) -> tuple[dict, bool]:
        from ...store.layout import IndexLayout
        from ...store.lock import WriterLock
        from ...watching.loop import index_embedder_spec

        with self._lock:
            running = self._running(repo.name)
            if running is not None:
                return self._public(running), True
            layout = IndexLayout(repo.index_dir)
            wait = None
            lock = WriterLock(layout.lock)
            if layout.lock.exists() and lock.is_held_elsewhere():
                pid = lock.holder_pid()
                if pid == os.getpid():
                    wait = LOCK_QUEUE_S
                else:
                    who = f"pid {pid}" if pid else "another process"
                    raise ToolError("locked", f"the index of {repo.name} is locked by {who} (another codesift "
                                              f"index is running)", pid=pid)
            job_id = uuid.uuid4().hex[:12]
            workdir = Path(tempfile.mkdtemp(prefix=f"codesift-job-{job_id}-"))
            argv = [sys.executable, "-m", "codesift.interfaces.mcp.index_job", str(repo.root),
                    "--index-dir", str(repo.index_dir), "--json", "--shutdown-timeout", f"{JOB_SHUTDOWN_S:g}"]
            spec = self.embedder_option or index_embedder_spec(repo.index_dir)
            if spec:
                argv += ["--embedder", spec]
            if full:
                argv.append("--full")
            if wait:
                argv += ["--wait", wait]
            out = open(workdir / "summary.json", "wb")
            err = open(workdir / "stderr.log", "wb")
            try:
                # A session of its own: a Ctrl-C at the server's terminal reaches the job
                # only through stop(), in order, not twice.
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True, close_fds=True)
            except OSError as exc:
                _remove(workdir)
                raise ToolError("internal_error", f"cannot start the index job: {exc}") from exc
            finally:
                out.close()
                err.close()
            job = {"job_id": job_id, "repo": repo.name, "state": "running", "full": full, "pid": proc.pid,
                   "started_at": time.time(), "finished_at": None, "exit_code": None, "summary": None,
                   "error": None, "_dir": workdir, "_index_dir": repo.index_dir, "_stop_reason": None}
            self._jobs[job_id] = job
            self._procs[job_id] = proc
            finished = [j for j in self._jobs.values() if j["state"] != "running"]
            for old in finished[:max(0, len(self._jobs) - JOBS_KEPT)]:
                self._jobs.pop(old["job_id"], None)
            waiter = threading.Thread(target=self._wait, args=(job_id,), name=f"job-{job_id}", daemon=True)
            self._waiters[job_id] = waiter
            waiter.start()
            log.info("index job %s started for %s (pid %d)", job_id, repo.name, proc.pid)
            return self._public(job), False

    def _wait(self, job_id: str) -> None:
        proc = self._procs[job_id]
        job = self._jobs[job_id]
        timed_out = False
        try:
            code = proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            job["_stop_reason"] = f"ran past its {self.timeout_s:g}s limit (--job-timeout)"
            code = stop_process(proc)
        summary = _read_summary(job["_dir"] / "summary.json")
        stderr_tail = ""
        try:
            stderr_tail = (job["_dir"] / "stderr.log").read_text(errors="replace")[-2000:]
        except OSError as exc:
            stderr_tail = f"(stderr not readable: {exc})"
        error = _job_error(code, summary, timed_out, job["_stop_reason"])
        state = "succeeded" if error is None else (
            "interrupted" if error["code"] in ("interrupted", "job_timeout") else "failed")
        with self._lock:
            job.update(state=state, exit_code=code, finished_at=time.time(), summary=summary, error=error)
            if error is not None and error["code"] == "index_crashed":
                job["stderr_tail"] = stderr_tail
            self._procs.pop(job_id, None)
        _remove(job["_dir"])
        log.info("index job %s finished: %s%s", job_id, state, f" ({error['message']})" if error else "")

    def _progress(self, job: dict) -> dict | None:
        if job["state"] != "running":
            s = job.get("summary") or {}
            f, c = s.get("files") or {}, s.get("chunks") or {}
            if not s:
                return None
            return {"files_seen": f.get("seen"), "files_to_index": None, "files_indexed": f.get("indexed"),
                    "files_unchanged": f.get("unchanged"), "files_deleted": f.get("deleted"),
                    "chunks_embedded": c.get("embedded"), "chunks_written": c.get("written"), "state": "done"}
        from ...pipeline.telemetry import read_live_status
        from ...store.layout import IndexLayout

        live = read_live_status(IndexLayout(job["_index_dir"]).live_status)
        if not live or live.get("pid") != job["pid"]:
            return {"state": "starting"}
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

    def stop(self, job_id: str, reason: str, timeout_s: float = JOB_SHUTDOWN_S + 3 * STOP_GRACE_S) -> None:
        """Stop one job through the pipeline's shutdown path and wait (bounded) for it."""
        with self._lock:
            proc = self._procs.get(job_id)
            job = self._jobs.get(job_id)
            if job is not None and job["_stop_reason"] is None:
                job["_stop_reason"] = reason
            waiter = self._waiters.get(job_id)
        if proc is not None:
            stop_process(proc)
        if waiter is not None:
            waiter.join(timeout_s)

    def stop_all(self, reason: str, timeout_s: float) -> None:
        """Stop every running job at once (SIGINT to all), then wait for each, bounded."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            ids = list(self._procs)
        stoppers = [threading.Thread(target=self.stop, args=(i, reason, timeout_s), name=f"stop-{i}", daemon=True)
                    for i in ids]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = [p.pid for p in self._procs.values() if p.poll() is None]
        if left:
            log.error("index job process(es) %s still running after %gs", left, timeout_s)

    def kill_all(self) -> None:
        """The second Ctrl-C: SIGTERM to each job (the run's 'exit at once'; consistent)."""
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _signal(proc, signal.SIGTERM)


_STOP_STEPS = ((signal.SIGINT, JOB_SHUTDOWN_S + STOP_GRACE_S), (signal.SIGTERM, STOP_GRACE_S),
               (signal.SIGKILL, STOP_GRACE_S))
_stopping: set[int] = set()  # pids some thread is stopping: one escalation per process
_stopping_lock = threading.Lock()


def stop_process(proc: subprocess.Popen) -> int:
    """SIGINT, then SIGTERM past the run's shutdown deadline, then SIGKILL; the exit status.
    Two threads stopping one job (its --job-timeout and a server shutdown) send one SIGINT:
    a second one would make the run leave at once, without committing what is in flight."""
    with _stopping_lock:
        first = proc.pid not in _stopping
        _stopping.add(proc.pid)
    if not first:
        try:
            return proc.wait(timeout=sum(wait_s for _, wait_s in _STOP_STEPS))
        except subprocess.TimeoutExpired:
            return proc.returncode if proc.poll() is not None else -signal.SIGKILL
    try:
        return _escalate(proc)
    finally:
        with _stopping_lock:
            _stopping.discard(proc.pid)


def _escalate(proc: subprocess.Popen) -> int:
    for sig, wait_s in _STOP_STEPS:
        if proc.poll() is not None:
            return proc.returncode
        _signal(proc, sig)
        try:
            return proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            log.warning("index job pid %d did not stop within %gs of %s", proc.pid, wait_s,
                        signal.Signals(sig).name)
    return proc.returncode if proc.poll() is not None else -signal.SIGKILL


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass  # it has just exited: the wait that follows collects it


def _read_summary(path: Path) -> dict | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _job_error(code: int, summary: dict | None, timed_out: bool, stop_reason: str | None) -> dict | None:
    """The job's error from its exit status and JSON summary (None: it succeeded)."""
    if timed_out:
        return _err("job_timeout", f"the index job {stop_reason}; it was stopped")
    status = (summary or {}).get("status")
    if code == 0 and status == "ok":
        return None
    err = (summary or {}).get("error") or {}
    message = err.get("message") if isinstance(err, dict) else str(err)
    if status == "interrupted" or (summary is None and stop_reason and code in (-2, -9, -15, 130, 137, 143)):
        why = f" ({stop_reason})" if stop_reason else ""
        return _err("interrupted", f"the index run was interrupted{why}; what was complete has been committed")
    if summary is None:
        return _err("index_crashed", f"the index run exited with status {code} without a summary")
    kind = err.get("kind") if isinstance(err, dict) else None
    return _err(_KIND_CODES.get(kind, "index_failed"), message or f"the index run failed (exit status {code})")


def _err(code: str, message: str) -> dict:
    return {"code": code, "message": message, "action": JOB_ACTIONS[code]}


def _remove(workdir: Path) -> None:
    try:
        for f in workdir.iterdir():
            f.unlink()
        workdir.rmdir()
    except OSError as exc:
        log.warning("could not remove the job directory %s: %s", workdir, exc)
