"""The single-owner committer: a write past its deadline is never retried beside itself,
and the writer lock outlives every thread that could still touch the store.
"""

from __future__ import annotations

import random
import shutil
import threading
import time

import pytest
from support import faults
from support.harness import FAULTS, Codesift, live_status, sample_tree, wait_for

import codesift
from codesift.errors import ConfigError, IndexLockedError
from codesift.inspection.verify import verify_index
from codesift.store.lock import WriterLock

SEED = 11


@pytest.fixture
def tree(cs):
    sample_tree(cs.root)
    return cs


def edit_every_module(cs) -> None:
    """Change every module, so the next run replaces (deletes, then adds) their rows."""
    for p in sorted(cs.root.glob("mod_*.py")):
        p.write_text(p.read_text() + "\n\ndef appended():\n    return 'edited'\n")


@pytest.fixture(scope="module")
def edited_template(tmp_path_factory):
    """An index of the sample tree whose modules were then all edited (so the next run
    replaces their rows), and the rows of a clean run over the edited tree; built once."""
    cs = Codesift(tmp_path_factory.mktemp("edited"))
    sample_tree(cs.root)
    assert cs.index().code == 0
    edit_every_module(cs)
    return cs, cs.clean_rows()


@pytest.mark.parametrize("phase", ["before", "between", "after"])
def test_write_past_its_deadline_is_never_retried_and_the_next_run_has_no_duplicates(edited_template, tmp_path,
                                                                                     phase):
    src, clean = edited_template
    tree = Codesift(tmp_path)
    shutil.copytree(src.root, tree.root)
    shutil.copytree(src.index_dir, tree.index_dir, symlinks=True)
    rng = random.Random(f"{SEED}-{phase}")
    hang = rng.choice(["1.5", "4"])  # the stalled write lands before the process exits, or is killed
    t0 = time.monotonic()
    r = tree.index(FAULTS + "hang_store", "--write-timeout", "1", "--retries", "3", timeout=60,
                   FAULT_STORE_PHASE=phase, FAULT_STORE_HANG_S=hang, FAULT_STORE_CALL="1")
    assert time.monotonic() - t0 < 40
    assert r.code == 1, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("codesift: error:")]
    assert len(lines) == 1, r.stderr
    assert "did not finish within 1s" in lines[0] and "not retried" in lines[0], lines[0]
    assert r.summary["retries"] == 0  # the abandoned write was not attempted again
    # The next run reconciles the journalled paths: exactly a clean run's rows, no duplicates.
    again = tree.index()
    assert again.code == 0, again.stderr
    rows = tree.rows()
    assert len({row[0] for row in rows}) == len(rows)
    assert rows == clean
    report = verify_index(tree.root, tree.index_dir)
    assert report["consistent"] and not report["duplicates"], report


def test_api_failed_run_with_a_hung_embedder_reports_the_live_thread_and_keeps_the_lock(tree):
    faults.GATE.clear()
    idx = codesift.open(tree.root, tree.index_dir)
    lock = WriterLock(tree.index_dir / "writer.lock")
    t0 = time.monotonic()
    try:
        result = idx.index(embedder=FAULTS + "gated", deadlines=codesift.Deadlines(embed=0.5), retries=0)
        assert time.monotonic() - t0 < 30
        assert result.status == "failed" and result.exit_code == 1
        assert "did not finish within 0.5s" in result.error.one_line()
        assert any(t.startswith("codesift-embed") for t in result.live_threads), result.live_threads
        assert result.summary()["live_threads"] == result.live_threads
        assert result.lock_released is False
        assert lock.is_held_elsewhere()  # not released under the hung thread
        with pytest.raises(IndexLockedError):
            idx.index(embedder=FAULTS + "clean")
    finally:
        faults.GATE.set()  # the hung call returns: its thread ends, then the lock goes
    wait_for(lambda: not lock.is_held_elsewhere(), 15, "the writer lock to be released")
    done = idx.index(embedder=FAULTS + "clean")
    assert done.status == "ok" and done.exit_code == 0 and done.live_threads == [] and done.lock_released
    assert tree.rows() == tree.clean_rows()


def test_api_cancel_token_stops_a_run_like_sigint_and_the_next_run_completes_it(tree, monkeypatch):
    monkeypatch.setenv("FAULT_DELAY_S", "0.1")
    idx = codesift.open(tree.root, tree.index_dir)
    token = codesift.CancelToken()

    def cancel_when_started() -> None:
        wait_for(lambda: (live_status(tree.index_dir) or {}).get("chunks", {}).get("embedded", 0) > 0, 30,
                 "the run to embed something")
        token.cancel("test asked")

    helper = threading.Thread(target=cancel_when_started, daemon=True)
    helper.start()
    t0 = time.monotonic()
    result = idx.index(embedder=FAULTS + "slow", batch_size=2, cancel=token,
                       deadlines=codesift.Deadlines(shutdown=2))
    helper.join(5)
    assert time.monotonic() - t0 < 40
    assert result.status == "interrupted" and result.exit_code == 130
    assert "cancelled (test asked)" in result.error.one_line()
    assert result.live_threads == [] and result.lock_released
    assert not WriterLock(tree.index_dir / "writer.lock").is_held_elsewhere()
    assert result.stats.files_indexed < 14
    monkeypatch.setenv("FAULT_DELAY_S", "0")
    done = idx.index(embedder=FAULTS + "clean")
    assert done.status == "ok"
    assert tree.rows() == tree.clean_rows()


def test_a_signal_to_a_run_cancels_its_token_and_hands_back_the_callers_handlers(tree, monkeypatch):
    """The watcher passes a token and owns SIGINT between runs: a signal that the run takes
    must reach the token (even one landing after the pipeline ended, when the run has nothing
    left to stop), and the caller's handlers must be back when the run returns."""
    import os
    import signal

    monkeypatch.setenv("FAULT_DELAY_S", "0.1")
    idx = codesift.open(tree.root, tree.index_dir)
    token = codesift.CancelToken()
    caught: list[int] = []

    def mine(signum, frame):
        caught.append(signum)

    def interrupt_when_started() -> None:
        wait_for(lambda: (live_status(tree.index_dir) or {}).get("chunks", {}).get("embedded", 0) > 0, 30,
                 "the run to embed something")
        os.kill(os.getpid(), signal.SIGINT)

    before = {sig: signal.signal(sig, mine) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        helper = threading.Thread(target=interrupt_when_started, daemon=True)
        helper.start()
        result = idx.index(embedder=FAULTS + "slow", batch_size=2, cancel=token,
                           deadlines=codesift.Deadlines(shutdown=2))
        helper.join(5)
        assert token.is_set() and token.reason == "SIGINT"
        assert result.status == "interrupted" and "SIGINT" in result.error.one_line()
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
        assert caught == []  # the run took the signal, not the caller's handler
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_a_signal_while_the_run_closes_still_reaches_the_token(tree):
    """A Ctrl-C that lands as the run hands its signals back (its last step) is neither
    dropped nor raised into the caller: the run's result stands and the token hears of it."""
    import os
    import signal

    class Token(codesift.CancelToken):
        def on_cancel(self, callback):
            unsubscribe = super().on_cancel(callback)

            def unsubscribe_after_a_signal():
                os.kill(os.getpid(), signal.SIGINT)  # the run's finally: the window being tested
                unsubscribe()
            return unsubscribe_after_a_signal

    caught: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        token = Token()
        result = codesift.open(tree.root, tree.index_dir).index(embedder=FAULTS + "clean", cancel=token)
        assert result.status == "ok" and result.lock_released
        assert token.is_set() and token.reason == "SIGINT"
        assert caught == []
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_stop_after_the_pipeline_skips_the_derived_rebuilds(tree, monkeypatch):
    """A stop asked once every file is committed leaves the run complete ("ok") and does
    not wait for the search-index or ANN rebuilds (derived data, redone by the next run)."""
    from codesift.pipeline import supervisor

    token = codesift.CancelToken()
    original = supervisor.IndexRun._refresh_search_indexes
    calls = []

    async def stop_then_refresh(self):
        token.cancel("asked after the pipeline")
        calls.append(1)
        await original(self)

    monkeypatch.setattr(supervisor.IndexRun, "_refresh_search_indexes", stop_then_refresh)
    result = codesift.open(tree.root, tree.index_dir).index(embedder=FAULTS + "clean", cancel=token, ann_min_rows=1)
    assert calls and result.status == "ok"
    assert result.summary()["ann"] == {"action": "skipped", "reason": "a stop was asked; the next run refreshes it"}
    monkeypatch.undo()
    done = codesift.open(tree.root, tree.index_dir).index(embedder=FAULTS + "clean", ann_min_rows=1)
    assert done.status == "ok" and done.summary()["ann"]["action"] == "built"
    assert tree.rows() == tree.clean_rows()


def test_deadlines_are_validated():
    with pytest.raises(ConfigError, match="embed-timeout must be a finite number of seconds > 0"):
        codesift.Deadlines(embed=0)
    with pytest.raises(ConfigError, match="read deadline must be"):
        codesift.Deadlines(read=float("inf"))
    flags = [flag for _, flag, _, _ in codesift.Deadlines.cli_options()]
    assert flags == ["--embed-timeout", "--write-timeout", "--queue-timeout", "--parse-timeout",
                     "--memory-wait-timeout", "--stall-timeout", "--shutdown-timeout", "--job-timeout"]
