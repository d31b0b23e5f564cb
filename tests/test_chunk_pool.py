"""Chunking in a worker process (cheap embedders, big runs): same rows, no orphans.

Through the Python API and the CLI: a run that chunks in the worker process writes
exactly the rows of a run on threads; a worker that dies fails only the file it had, and
the run finishes on threads; kill -9 of the indexer leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from support.harness import sample_tree, wait_for

import codesift
from codesift.pipeline import chunk_pool


def rows(index_dir: Path) -> list[tuple]:
    db = sqlite3.connect(index_dir / "manifest.sqlite")
    try:
        return sorted(db.execute("SELECT id, path, start_line, end_line, symbol, content FROM q_chunks").fetchall())
    finally:
        db.close()


def children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out |= {int(x) for x in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_the_worker_process_writes_the_rows_threads_write(tmp_path, monkeypatch):
    monkeypatch.setattr(chunk_pool, "MIN_FILES", 5)
    root = sample_tree(tmp_path / "repo", files=30)
    pooled = codesift.open(root, tmp_path / "a").index(embedder="hash", chunk_process=True)
    threaded = codesift.open(root, tmp_path / "b").index(embedder="hash", chunk_process=False)
    assert pooled.status == threaded.status == "ok"
    assert rows(tmp_path / "a") == rows(tmp_path / "b") and rows(tmp_path / "a")
    assert codesift.open(root, tmp_path / "a").verify()["consistent"]


def test_a_dead_worker_fails_its_file_with_a_reason_and_leaves_no_process():
    async def go():
        pool = chunk_pool.ChunkPool("hash")
        first = await pool.chunk("a.py", "def f():\n    return 1\n", 256, 5.0, False, timeout_s=60)
        assert first.chunks
        workers = list(pool._executor._processes.values())
        os.kill(workers[0].pid, signal.SIGKILL)
        with pytest.raises(chunk_pool.PoolFailed, match="chunking process"):
            for _ in range(50):  # the executor notices the death on its own thread
                await pool.chunk("b.py", "def g():\n    return 2\n", 256, 5.0, False, timeout_s=60)
                await asyncio.sleep(0.1)
        assert pool.broken and not any(p.is_alive() for p in workers)

    asyncio.run(go())


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_kill_9_of_the_indexer_leaves_no_worker(cs):
    sample_tree(cs.root, files=chunk_pool.MIN_FILES + 400)
    proc = subprocess.Popen(cs.index_args("hash"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=cs.env())
    try:
        workers = wait_for(lambda: children(proc.pid) or (proc.poll() is not None and {-1}), 120,
                           "the chunking process to start")
        if workers == {-1}:
            pytest.skip("the run ended before its chunking process started (machine too fast)")
        assert any(alive(p) for p in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        wait_for(lambda: not any(alive(p) for p in workers), 10, "the worker to exit with its parent")
    finally:
        if proc.poll() is None:
            proc.kill()
