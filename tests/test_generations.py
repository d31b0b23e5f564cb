"""Generations: ``--full`` and an embedder switch build beside the serving index.

Scenario per test: an index serves; a rebuild starts; it is stopped (SIGINT, SIGTERM,
SIGKILL at a seeded random moment), refused (no disk) or observed (search, status);
the old generation must keep serving exactly its rows, and the next run must complete
the new generation to exactly a clean run's rows.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.harness import FAULTS, Codesift, live_status, sample_tree, wait_for

import codesift
from codesift.inspection.status import collect_status
from codesift.inspection.verify import verify_index
from codesift.pipeline.stages import CHUNKING_VERSION

SEED = 20261202
OTHER = FAULTS + "other"  # hash-32: another embedder than the template's hash-64


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A tree, its index (embedder hash-64) and the rows of a clean run, built once."""
    cs = Codesift(tmp_path_factory.mktemp("template"))
    sample_tree(cs.root)
    r = cs.index(FAULTS + "clean")
    assert r.code == 0, r.stderr
    return cs, cs.rows()


@pytest.fixture
def served(template, tmp_path):
    """A private copy of the template's tree and index (symlinks kept as links)."""
    src, rows = template
    cs = Codesift(tmp_path)
    shutil.copytree(src.root, cs.root, symlinks=True)
    shutil.copytree(src.index_dir, cs.index_dir, symlinks=True)
    return cs, rows


def generation(cs) -> str:
    return Path(os.readlink(cs.index_dir / "current")).name


def table_dim(cs) -> int:
    from codesift.store.chunks import ChunkStore

    return ChunkStore(cs.index_dir / "lancedb").dim()


def assert_serves(cs, rows, gen: str, dim: int) -> None:
    """The index serves generation ``gen``: exact rows, consistent, searchable."""
    assert generation(cs) == gen
    assert cs.rows() == rows
    assert table_dim(cs) == dim
    report = verify_index(cs.root, cs.index_dir)
    assert report["consistent"], report
    assert report["generation"] == gen
    hits = codesift.open(cs.root, cs.index_dir).search("function_3_5 scaled", k=3, mode="text")
    assert hits and hits[0].path == "mod_03.py"


def stop_at_random_moment(cs, proc: subprocess.Popen, sig: int, rng: random.Random) -> None:
    """Send ``sig`` once the rebuild has embedded a seeded random number of chunks."""
    threshold = rng.choice([0, 4, 8, 16])  # of ~26 chunks

    def reached():
        live = live_status(cs.index_dir)
        if proc.poll() is not None:
            return True
        return live and live.get("rebuild") and live["chunks"]["embedded"] >= threshold

    wait_for(reached, 30, f"the rebuild to embed {threshold} chunks")
    if proc.poll() is None:
        os.kill(proc.pid, sig)


@pytest.mark.parametrize("switch", [False, True], ids=["full", "embedder-switch"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["INT", "TERM", "KILL"])
def test_interrupted_rebuild_leaves_the_old_generation_serving_and_resumes_exactly(served, sig, switch):
    cs, rows = served
    rng = random.Random(SEED + sig + 10 * switch)
    old = generation(cs)
    embedder = OTHER if switch else FAULTS + "slow"
    t0 = time.monotonic()
    # No cache for the interrupted run: every chunk is embedded (slowly), so the signal lands mid-rebuild.
    proc = cs.popen(embedder, "--full", "--no-embed-cache", "--batch-size", "2", "--shutdown-timeout", "2",
                    FAULT_DELAY_S="0.25")
    stop_at_random_moment(cs, proc, sig, rng)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 40
    assert proc.returncode in (128 + sig, -sig), err
    if sig != signal.SIGKILL:
        assert json.loads(out)["status"] == "interrupted"
        assert f"interrupted by {signal.Signals(sig).name}" in err
    assert_serves(cs, rows, old, 64)  # untouched: the old generation, exactly
    status = collect_status(cs.root, cs.index_dir)
    assert status["embedder"]["name"] == "hash-64"
    assert status["rebuild"]["state"] == "interrupted"
    assert status["rebuild"]["embedder"] == embedder
    # The next run (no --full) resumes the rebuild and swaps it in.
    t1 = time.monotonic()
    r = cs.index(embedder)
    assert r.code == 0, r.stderr
    assert time.monotonic() - t1 < 60
    new = generation(cs)
    assert new != old
    assert_serves(cs, rows, new, 32 if switch else 64)
    assert not os.path.lexists(cs.index_dir / "next")
    assert sorted(p.name for p in (cs.index_dir / "generations").iterdir()) == [new]  # the old one is gone
    assert collect_status(cs.root, cs.index_dir)["rebuild"] is None


def test_search_and_status_during_a_rebuild_read_the_old_generation(served):
    cs, rows = served
    old = generation(cs)
    before = [(h.path, h.start_line) for h in codesift.open(cs.root, cs.index_dir).search("scaled value", k=5)]
    # The new embedder hangs after a few calls: the rebuild stays in progress.
    proc = cs.popen(OTHER, "--full", "--batch-size", "4", "--embed-timeout", "600", "--shutdown-timeout", "1",
                    FAULT_HANG_AFTER="3")
    try:
        wait_for(lambda: (live_status(cs.index_dir) or {}).get("rebuild")
                 and os.path.lexists(cs.index_dir / "next"), 30, "the rebuild to start")
        status = collect_status(cs.root, cs.index_dir)
        assert status["generation"] == old
        assert status["embedder"] == {"name": "hash-64", "dim": 64}
        assert status["rebuild"]["state"] == "running"
        assert status["rebuild"]["embedder"] == OTHER
        after = [(h.path, h.start_line) for h in codesift.open(cs.root, cs.index_dir).search("scaled value", k=5)]
        assert after == before
        assert cs.rows() == rows
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert_serves(cs, rows, old, 64)


def test_rebuild_without_room_for_two_generations_is_refused_up_front(served):
    cs, rows = served
    old = generation(cs)
    t0 = time.monotonic()
    r = cs.index(OTHER, "--full", CODESIFT_TEST_FREE_BYTES="1000")
    assert time.monotonic() - t0 < 30
    assert r.code == 1
    lines = [line for line in r.stderr.splitlines() if line.startswith("codesift: error:")]
    assert len(lines) == 1 and "not enough free disk for a rebuild" in lines[0], r.stderr
    assert "keeps serving" in lines[0]
    assert not os.path.lexists(cs.index_dir / "next")
    assert_serves(cs, rows, old, 64)


def test_embedder_switch_without_full_is_still_refused_and_changes_nothing(served):
    cs, rows = served
    old = generation(cs)
    r = cs.index(OTHER)
    assert r.code == 1
    assert "built with embedder hash-64" in r.stderr and "--full" in r.stderr
    assert_serves(cs, rows, old, 64)


def test_a_legacy_index_is_migrated_in_place(tmp_path):
    """An index written before generations (plain lancedb/ and manifest.sqlite) keeps working."""
    cs = Codesift(tmp_path)
    sample_tree(cs.root)
    assert cs.index(FAULTS + "clean").code == 0
    rows = cs.rows()
    gen = cs.index_dir / "generations" / generation(cs)
    for name in ("lancedb", "manifest.sqlite", "current"):
        os.unlink(cs.index_dir / name)
    os.rename(gen / "lancedb", cs.index_dir / "lancedb")
    for f in gen.iterdir():
        os.rename(f, cs.index_dir / f.name)
    shutil.rmtree(cs.index_dir / "generations")
    assert cs.rows() == rows  # the legacy layout reads as before
    r = cs.index(FAULTS + "clean")
    assert r.code == 0, r.stderr
    assert r.summary["files"]["unchanged"] == 14
    assert (cs.index_dir / "lancedb").is_symlink()
    assert_serves(cs, rows, "g0", 64)


def test_a_plain_index_resumes_an_interrupted_embedder_switch_and_a_chunking_change_rebuilds(served):
    cs, rows = served
    old = generation(cs)
    # An embedder switch stopped early (its embedder fails at once): the old generation serves.
    r = cs.index(OTHER, "--full", "--retries", "0", FAULT_RAISE="1")
    assert r.code == 1 and "the other embedder is broken" in r.stderr
    assert generation(cs) == old and os.path.lexists(cs.index_dir / "next")
    # `codesift index` without --embedder picks the unfinished rebuild's embedder and resumes it.
    plain = cs.run(cs.argv("index", str(cs.root), "--index-dir", str(cs.index_dir), "--json"))
    assert plain.code == 0, plain.stderr
    assert plain.summary["rebuild"]["resumed"] is True and plain.summary["rebuild"]["swapped"] is True
    assert_serves(cs, rows, generation(cs), 32)
    # --full back to the first embedder: the shared embedding cache makes it cheap.
    done = cs.index(FAULTS + "clean", "--full")
    assert done.code == 0, done.stderr
    assert done.summary["rebuild"] == {"generation": generation(cs), "reason": "--full", "resumed": False,
                                       "swapped": True}
    assert done.summary["chunks"]["from_cache"] == len(rows) and done.summary["chunks"]["embedded"] == len(rows)
    assert_serves(cs, rows, generation(cs), 64)
    # A generation built by another chunking version is rebuilt by a plain run.
    import sqlite3

    db = sqlite3.connect(cs.index_dir / "manifest.sqlite")
    db.execute("UPDATE meta SET value = '0' WHERE key = 'chunking'")
    db.commit()
    db.close()
    before = generation(cs)
    again = cs.index(FAULTS + "clean")
    assert again.code == 0, again.stderr
    assert again.summary["rebuild"]["reason"] == f"chunking version 0 -> {CHUNKING_VERSION}"
    assert generation(cs) != before
    assert_serves(cs, rows, generation(cs), 64)
