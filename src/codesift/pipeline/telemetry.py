"""Run statistics, per-stage heartbeats, the live status file and stack dumps."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StageState:
    """What one stage is doing. ``pending`` counts work it holds or waits to finish."""

    name: str
    state: str = "idle"  # idle | busy | waiting | done | failed
    busy_s: float = 0.0
    wait_s: float = 0.0
    last_progress: float = field(default_factory=time.monotonic)
    pending: int = 0
    items: int = 0
    _since: float = field(default_factory=time.monotonic)

    def _switch(self, state: str) -> None:
        now = time.monotonic()
        if self.state == "busy":
            self.busy_s += now - self._since
        elif self.state == "waiting":
            self.wait_s += now - self._since
        self.state = state
        self._since = now

    def busy(self) -> None:
        self._switch("busy")

    def waiting(self) -> None:
        self._switch("waiting")

    def done(self) -> None:
        self._switch("done")

    def progress(self, n: int = 1) -> None:
        self.items += n
        self.last_progress = time.monotonic()

    def stalled_for(self, now: float) -> float:
        """Seconds without progress while holding pending work (0 when it holds none)."""
        # Only a stage that is itself working counts: one waiting on a queue is held up by
        # a neighbour, which is judged on its own (and a true deadlock hits the queue deadline).
        if self.pending <= 0 or self.state != "busy":
            return 0.0
        return now - self.last_progress

    def as_dict(self) -> dict:
        self._switch(self.state)  # fold the current interval into the totals
        return {"state": self.state, "busy_s": round(self.busy_s, 3), "wait_s": round(self.wait_s, 3),
                "items": self.items, "pending": self.pending,
                "heartbeat_age_s": round(time.monotonic() - self.last_progress, 3)}


@dataclass
class RunStats:
    started: float = field(default_factory=time.time)
    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    files_to_index: int = 0
    skipped: list[dict] = field(default_factory=list)  # {path, reason}
    notes: list[dict] = field(default_factory=list)  # {path, note}: indexed, but degraded
    errors: list[dict] = field(default_factory=list)  # {path, reason}: file problems (also in skipped)
    chunks_written: int = 0
    chunks_deleted: int = 0
    chunks_embedded: int = 0
    chunks_cached: int = 0
    chunks_total: int = 0
    retries: int = 0
    # the fast tier: files and chunks made searchable ahead of their vectors, and when its
    # first rows and its last were committed (seconds since the run started)
    lexical_files: int = 0
    lexical_chunks: int = 0
    lexical_first_s: float | None = None
    lexical_done_s: float | None = None
    ann: dict | None = None  # what the run did to the vectors' ANN index (store/ann.py)
    peak_rss: int = 0
    stages: dict[str, StageState] = field(default_factory=dict)

    def stage(self, name: str) -> StageState:
        if name not in self.stages:
            self.stages[name] = StageState(name)
        return self.stages[name]


def dump_stacks() -> str:
    """Every asyncio task's and every thread's stack, for the stall report."""
    out = io.StringIO()
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:
        tasks = set()
    for task in sorted(tasks, key=lambda t: t.get_name()):
        out.write(f"--- task {task.get_name()} ---\n")
        task.print_stack(file=out)
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        out.write(f"--- thread {names.get(ident, ident)} ---\n")
        out.write("".join(traceback.format_stack(frame)))
    return out.getvalue()


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def read_live_status(path: Path) -> dict | None:
    """The live status of a running index, or None when no run is alive."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return data
