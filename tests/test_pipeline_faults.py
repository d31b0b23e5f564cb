"""Fault injection through the public CLI: one scenario per pipeline invariant.

Each test asserts a bounded exit time, the exit code, the message, and that the index
holds exactly the chunks of a clean run (or, after a failure, a consistent subset that
the next run completes exactly).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.harness import FAULTS, live_status, sample_tree, wait_for


@pytest.fixture
def tree(cs):
    sample_tree(cs.root)
    return cs


def assert_one_error_line(stderr: str, *needles: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("codesift: error:")]
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def assert_resumes_exactly(cs) -> None:
    """The next clean run completes the index to exactly a clean run's rows."""
    r = cs.index()
    assert r.code == 0, r.stderr
    assert cs.rows() == cs.clean_rows()
    code, report = cs.verify()
    assert code == 0, report


# --- embedder faults -----------------------------------------------------------------
def test_clean_run_indexes_everything_and_reindex_is_a_no_op(tree):
    r = tree.index()
    assert r.code == 0, r.stderr
    s = r.summary
    assert s["status"] == "ok" and s["error"] is None
    assert s["files"]["indexed"] == s["files"]["seen"] == 14
    assert s["chunks"]["written"] == s["chunks"]["total"] == len(tree.rows()) > 14
    assert {"discover", "read", "embed", "write"} <= set(s["stages"])
    again = tree.index()
    assert again.code == 0
    assert again.summary["files"]["unchanged"] == 14
    assert again.summary["chunks"]["written"] == 0
    assert tree.verify()[0] == 0


def test_embedder_raising_once_is_retried_and_the_run_succeeds(tree):
    r = tree.index(FAULTS + "raise_once")
    assert r.code == 0, r.stderr
    assert r.summary["retries"] == 1
    assert "transient embedder failure" in r.stderr  # the retry is logged, not hidden
    assert tree.rows() == tree.clean_rows()


def test_embedder_raising_always_fails_in_bounded_time_with_one_clear_line(tree):
    r = tree.index(FAULTS + "raise_always", "--retries", "2", timeout=30)
    assert r.code == 1
    assert r.seconds < 20
    line = assert_one_error_line(r.stderr, "embed stage failed", "batch 1", "embedder is broken")
    assert "after 3 attempts" in line
    s = r.summary
    assert s["status"] == "failed" and s["error"]["stage"] == "embed"
    assert s["retries"] == 2
    assert tree.rows() == []  # nothing was complete, nothing is claimed
    assert_resumes_exactly(tree)


def test_failure_mid_run_commits_what_was_complete_and_resume_completes(tree):
    # 26 chunks in batches of 4 take at least 7 calls (more when the embed queue runs dry
    # between files): failing after the 4th always fails mid-run, whatever the timing.
    r = tree.index(FAULTS + "fail_after", "--retries", "1", "--batch-size", "4", FAULT_AFTER="4")
    assert r.code == 1
    assert_one_error_line(r.stderr, "embed stage failed", "failed for good")
    committed = tree.rows()
    assert 0 < len(committed) < len(tree.clean_rows())
    # what is there is whole files only, vouched for by the manifest
    code, report = tree.verify()
    assert not report["orphans"] and not report["duplicates"] and not report["count_mismatch"]
    assert_resumes_exactly(tree)


def test_embedder_returning_the_wrong_shape_fails_clearly(tree):
    r = tree.index(FAULTS + "wrong_shape", "--retries", "0", timeout=30)
    assert r.code == 1
    assert_one_error_line(r.stderr, "embed stage failed", "shape", "expected")
    assert tree.rows() == []


def test_hung_embed_call_times_out_and_the_process_exits(tree):
    r = tree.index(FAULTS + "hang", "--embed-timeout", "0.5", "--retries", "1", timeout=30)
    assert r.code == 1
    assert r.seconds < 15  # the hung daemon thread does not keep the process alive
    assert_one_error_line(r.stderr, "embed stage failed", "did not finish within 0.5s")
    assert_resumes_exactly(tree)


def test_stall_watchdog_dumps_stacks_and_fails(tree):
    r = tree.index(FAULTS + "hang", "--embed-timeout", "600", "--stall-timeout", "1", timeout=30)
    assert r.code == 1
    assert r.seconds < 15
    assert_one_error_line(r.stderr, "embed stage failed", "no progress")
    assert "--- thread codesift-embed ---" in r.stderr  # every thread's stack is in the log
    assert "--- task embed ---" in r.stderr


def test_slow_embedder_is_not_mistaken_for_a_stall(tree):
    r = tree.index(FAULTS + "slow", "--stall-timeout", "5", FAULT_DELAY_S="0.05")
    assert r.code == 0, r.stderr
    assert tree.rows() == tree.clean_rows()


# --- memory ------------------------------------------------------------------------------
def test_memory_that_never_clears_fails_with_stage_rss_and_limit(tree):
    r = tree.index(FAULTS + "clean", "--memory-limit", "1MB", "--memory-wait-timeout", "0.5", timeout=30)
    assert r.code == 1
    assert r.seconds < 15
    assert_one_error_line(r.stderr, "stage failed", "RSS", "memory limit 976.6 KiB")
    assert_resumes_exactly(tree)


# --- write failures ----------------------------------------------------------------------
def _small_fs(path: Path):
    """A tiny tmpfs for the index (a disk that fills up); falls back to RLIMIT_FSIZE."""
    path.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)], capture_output=True)
    return p.returncode == 0


def test_disk_full_fails_cleanly_and_leaves_a_resumable_index(tree):
    for i in range(40):  # enough rows to overflow the small index
        (tree.root / f"extra_{i}.py").write_text(
            "".join(f"def f{i}_{j}():\n    return '{'x' * 300}{j}'\n\n" for j in range(40)))
    mounted = _small_fs(tree.index_dir)
    try:
        preexec = None
        if not mounted:
            def preexec():
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (256_000, 256_000))
        r = tree.run(tree.index_args(FAULTS + "clean", "--retries", "1"), timeout=60, preexec=preexec)
        assert r.code == 1, r.stderr
        assert r.seconds < 45
        line = assert_one_error_line(r.stderr, "stage failed")
        assert any(s in line.lower() for s in ("no space", "too large", "disk", "full")), line
    finally:
        if mounted:
            # Move what was written to ordinary disk, so the resume has room.
            keep = tree.tmp / "index-copy"
            subprocess.run(["cp", "-a", str(tree.index_dir), str(keep)], check=True)
            subprocess.run(["umount", str(tree.index_dir)], check=True)
            tree.index_dir.rmdir()
            keep.rename(tree.index_dir)
    assert_resumes_exactly(tree)


def test_unwritable_index_dir_fails_with_a_clear_line(cs):
    sample_tree(cs.root, files=2)
    cs.index_dir.write_text("not a directory")
    r = cs.index(timeout=30)
    assert r.code == 1
    assert r.seconds < 20
    assert_one_error_line(r.stderr, str(cs.index_dir))


# --- kills and signals ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_sigkill_at_a_random_moment_then_resume_matches_a_clean_run(tree, seed):
    r = tree.index(FAULTS + "kill_at_random", "--batch-size", "4", FAULT_SEED=str(seed), FAULT_WINDOW_S="2.0")
    assert r.code in (0, -signal.SIGKILL)
    assert_resumes_exactly(tree)


def test_sigterm_stops_commits_and_exits_143(tree):
    proc = tree.popen(FAULTS + "slow", "--batch-size", "2", FAULT_DELAY_S="0.3")
    try:
        wait_for(lambda: (live_status(tree.index_dir) or {}).get("chunks", {}).get("written", 0) > 0, 30,
                 "the first committed chunks")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert elapsed < 12  # the shutdown deadline (10 s) bounds it
    assert "interrupted by SIGTERM" in err
    import json

    assert json.loads(out)["status"] == "interrupted"
    assert len(tree.rows()) > 0
    assert_resumes_exactly(tree)


def test_second_signal_exits_at_once_and_the_index_still_resumes(tree):
    proc = tree.popen(FAULTS + "slow", "--batch-size", "2", FAULT_DELAY_S="0.5")  # ~10 s: signals land mid-run
    try:
        wait_for(lambda: (live_status(tree.index_dir) or {}).get("chunks", {}).get("embedded", 0) > 0, 30,
                 "the first embedded chunks")
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert_resumes_exactly(tree)


# --- concurrency ---------------------------------------------------------------------------
def test_second_writer_is_refused_with_the_holders_pid_or_waits(tree):
    # ~10 s of embedding: the first run surely holds the lock when the second starts.
    proc = tree.popen(FAULTS + "slow", "--batch-size", "2", FAULT_DELAY_S="0.5")
    try:
        wait_for(lambda: (live_status(tree.index_dir) or {}).get("chunks", {}).get("embedded", 0) > 0, 30,
                 "the first run to be embedding")
        r = tree.index(timeout=20)
        assert r.code == 1
        assert r.seconds < 10
        assert_one_error_line(r.stderr, f"locked by pid {proc.pid}", "--wait")
        waited = tree.index(FAULTS + "clean", "--wait", "60", timeout=90)
        assert waited.code == 0, waited.stderr
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert tree.rows() == tree.clean_rows()


def test_files_changed_and_deleted_during_a_run(tree):
    edit, gone = tree.root / "mod_03.py", tree.root / "mod_07.py"
    r = tree.index(FAULTS + "mutate_tree", FAULT_EDIT=str(edit), FAULT_DELETE=str(gone))
    assert r.code == 0, r.stderr
    assert_resumes_exactly(tree)
    assert not any(row[1] == "mod_07.py" for row in tree.rows())
    assert any("added_during_run" in row[4] for row in tree.rows())


# --- incremental ----------------------------------------------------------------------------
def test_changed_file_rows_replaced_deleted_file_rows_removed(tree):
    assert tree.index().code == 0
    (tree.root / "mod_01.py").write_text("def only_function():\n    return 1\n")
    (tree.root / "mod_02.py").unlink()
    r = tree.index()
    assert r.code == 0, r.stderr
    s = r.summary
    assert s["files"]["indexed"] == 1 and s["files"]["deleted"] == 1
    assert s["files"]["unchanged"] == 12
    assert tree.rows() == tree.clean_rows()


def test_touched_but_identical_file_is_not_reembedded(tree):
    assert tree.index().code == 0
    p = tree.root / "mod_01.py"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    r = tree.index()
    assert r.summary["chunks"]["written"] == 0
    assert r.summary["files"]["unchanged"] == 14


def test_other_embedder_is_refused_unless_full(tree):
    assert tree.index().code == 0
    r = tree.index("hash")
    assert r.code == 1
    assert_one_error_line(r.stderr, "built with embedder hash-64", "--full")
    full = tree.index("hash", "--full")
    assert full.code == 0, full.stderr
    assert full.summary["files"]["indexed"] == 14
    assert tree.verify()[0] == 0
