"""``codesift status``: what is indexed, what was skipped, and what is running.

Reads the manifest and the live status file only; it never imports ``lancedb``, so it
answers instantly, also while an index run is writing.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import IO

from ..errors import StoreError
from ..pipeline.telemetry import read_live_status
from ..store.manifest import STATUS_ERROR, STATUS_INDEXED, STATUS_SKIPPED
from ._common import du, open_manifest, require_index

SKIPPED_CAP = 200
NOTES_CAP = 200
PENDING_CAP = 200


def _last_run(run: dict | None) -> dict | None:
    if run is None:
        return None
    summary = run.get("summary") or {}
    duration = summary.get("duration_s")
    if duration is None and run.get("finished_at") and run.get("started_at"):
        duration = round(run["finished_at"] - run["started_at"], 3)
    error = summary.get("error")
    if isinstance(error, dict):
        error = error.get("message") or str(error)
    files = summary.get("files") or {}
    chunks = summary.get("chunks") or {}
    return {
        "status": run.get("status"),
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "duration_s": duration,
        "error": error,
        "files_indexed": files.get("indexed"),
        "files_unchanged": files.get("unchanged"),
        "files_deleted": files.get("deleted"),
        "chunks_written": chunks.get("written"),
        "peak_rss_bytes": summary.get("peak_rss_bytes"),
    }


def _running(live: dict | None) -> dict | None:
    if live is None:
        return None
    return {
        "pid": live.get("pid"),
        "state": live.get("state"),
        "started_at": live.get("started_at"),
        "updated_at": live.get("updated_at"),
        "files": live.get("files"),
        "chunks": live.get("chunks"),
        "retries": live.get("retries"),
        "rss_bytes": live.get("rss_bytes"),
        "memory_limit_bytes": live.get("memory_limit_bytes"),
        "queues": live.get("queues"),
        "stages": live.get("stages"),
    }


def _rebuild(layout, live: dict | None) -> dict | None:
    """Progress of an unfinished rebuild (a generation under construction), from its own manifest."""
    from ..store.generations import read_state

    pending = read_state(layout).pending
    if pending is None or not pending.manifest.is_file():
        return None
    m = open_manifest(pending)
    try:
        meta = m.meta()
        counts = m.counts()
    finally:
        m.close()
    running = bool(live and (live.get("rebuild") or {}).get("generation") == pending.name)
    started = meta.get("rebuild_started_at")
    return {
        "generation": pending.name,
        "reason": meta.get("rebuild_reason"),
        "embedder": meta.get("spec") or meta.get("embedder"),
        "started_at": float(started) if started else None,
        "files_done": counts.get(STATUS_INDEXED, 0) + counts.get(STATUS_SKIPPED, 0) + counts.get(STATUS_ERROR, 0),
        "chunks": counts.get("chunks", 0),
        "state": "running" if running else "interrupted",
    }


def collect_status(root: Path, index_dir: Path) -> dict:
    root, index_dir = Path(root), Path(index_dir)
    layout = require_index(index_dir, "status")
    from ..store.generations import read_state

    current = read_state(layout).current  # resolved once: a swap mid-read cannot mix generations
    manifest = open_manifest(current if current is not None else layout)
    try:
        meta = manifest.meta()
        counts = manifest.counts()
        languages = manifest.languages()
        last = manifest.last_run()
        pending = manifest.pending_paths()
        skipped: list[dict] = []
        skipped_total = 0
        for status in (STATUS_SKIPPED, STATUS_ERROR):
            for rec in manifest.iter_files(status):
                skipped_total += 1
                if len(skipped) < SKIPPED_CAP:
                    skipped.append({"path": rec.path, "status": rec.status, "reason": rec.reason})
        notes: list[dict] = []
        notes_total = 0
        for rec in manifest.iter_files(STATUS_INDEXED):
            if rec.reason:
                notes_total += 1
                if len(notes) < NOTES_CAP:
                    notes.append({"path": rec.path, "note": rec.reason})
    finally:
        manifest.close()
    live = read_live_status(layout.live_status)
    try:
        rebuild = _rebuild(layout, live)
    except (StoreError, sqlite3.Error) as exc:
        rebuild = {"state": "unreadable", "error": str(exc)}
    try:
        dim = int(meta["dim"]) if meta.get("dim") else None
    except ValueError:
        dim = None
    return {
        "root": str(root),
        "index_dir": str(index_dir),
        "embedder": {"name": meta.get("embedder"), "dim": dim},
        "files": {STATUS_INDEXED: counts.get(STATUS_INDEXED, 0), STATUS_SKIPPED: counts.get(STATUS_SKIPPED, 0),
                  STATUS_ERROR: counts.get(STATUS_ERROR, 0)},
        "chunks": counts.get("chunks", 0),
        "languages": {(k or "unknown"): v for k, v in languages.items()},
        "index_size_bytes": du(index_dir),
        "last_run": _last_run(last),
        "skipped": skipped,
        "skipped_total": skipped_total,
        "notes": notes,
        "notes_total": notes_total,
        "pending": pending[:PENDING_CAP],
        "pending_total": len(pending),
        "running": _running(live),
        "generation": current.name if current is not None else None,
        "rebuild": rebuild,
    }


# -- rendering -----------------------------------------------------------------------------

def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    s = max(0.0, time.time() - ts)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.0f} days ago"


def render_status(report: dict, out: IO[str]) -> None:
    f = report["files"]
    emb = report["embedder"]
    rows: list[tuple[str, str]] = [
        ("root", report["root"]),
        ("index", f"{report['index_dir']} ({_size(report['index_size_bytes'])})"),
        ("embedder", f"{emb['name'] or '-'}" + (f" (dim {emb['dim']})" if emb["dim"] else "")),
        ("files", f"{f['indexed']} indexed, {f['skipped']} skipped, {f['error']} errors"),
        ("chunks", str(report["chunks"])),
    ]
    if report["languages"]:
        rows.append(("languages", ", ".join(f"{k} {v}" for k, v in report["languages"].items())))
    last = report["last_run"]
    if last:
        text = f"{last['status']}, finished {_ago(last['finished_at'])}"
        if last.get("duration_s") is not None:
            text += f", took {last['duration_s']:.1f}s"
        if last.get("error"):
            text += f": {last['error']}"
        rows.append(("last run", text))
    else:
        rows.append(("last run", "none recorded"))
    run = report["running"]
    if run:
        files = run.get("files") or {}
        chunks = run.get("chunks") or {}
        text = (f"pid {run.get('pid')} {run.get('state')}: {files.get('indexed', 0)}/{files.get('to_index', 0)} "
                f"files, {chunks.get('written', 0)} chunks written, rss {_size(run.get('rss_bytes'))}")
        rows.append(("running", text))
        stages = run.get("stages") or {}
        if stages:
            rows.append(("stages", ", ".join(f"{k} {v.get('state')} ({v.get('items', 0)})"
                                             for k, v in stages.items())))
        queues = run.get("queues") or {}
        if queues:
            rows.append(("queues", ", ".join(f"{k} {v}" for k, v in queues.items())))
    rb = report.get("rebuild")
    if rb:
        if rb.get("state") == "unreadable":
            rows.append(("rebuild", f"unreadable: {rb.get('error')}"))
        else:
            hint = "" if rb["state"] == "running" else "; the next index run resumes it (--full restarts it)"
            rows.append(("rebuild", f"{rb['state']}: generation {rb['generation']} ({rb['reason']}, embedder "
                                    f"{rb['embedder']}), {rb['files_done']} files and {rb['chunks']} chunks "
                                    f"built so far; the current generation serves until it completes{hint}"))
    if report["pending_total"]:
        rows.append(("pending", f"{report['pending_total']} file(s) left in flight by an unfinished write"
                                + ("" if run else "; the next index run repairs them")))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        out.write(f"{k.ljust(width)}  {v}\n")
    if report["skipped"]:
        out.write(f"skipped ({report['skipped_total']}):\n")
        for s in report["skipped"]:
            tag = "error: " if s["status"] == STATUS_ERROR else ""
            out.write(f"  {s['path']}: {tag}{s['reason']}\n")
        if report["skipped_total"] > len(report["skipped"]):
            out.write(f"  ... and {report['skipped_total'] - len(report['skipped'])} more\n")
    if report["notes"]:
        out.write(f"notes ({report['notes_total']}):\n")
        for n in report["notes"]:
            out.write(f"  {n['path']}: {n['note']}\n")
        if report["notes_total"] > len(report["notes"]):
            out.write(f"  ... and {report['notes_total'] - len(report['notes'])} more\n")
