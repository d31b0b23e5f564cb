"""Embedders that misbehave on purpose, loaded by the CLI as ``python:support.faults:NAME``.

They wrap the deterministic ``hash`` embedder, so a faulty run and a clean run produce
identical rows. Knobs come from environment variables, because the CLI runs in a
subprocess.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

from codesift.embedding.hashing import HashEmbedder

DIM = 64


class Faulty(HashEmbedder):
    # These stand in for real, slower models (and misbehave like them): the pipeline runs
    # its fast tier for them, so every fault test exercises it too.
    cheap = False

    def __init__(self) -> None:
        super().__init__(DIM)
        self.name = f"hash-{DIM}"  # same identity as the clean run, on purpose
        self.calls = 0
        self._lock = threading.Lock()

    def before(self) -> None:
        pass

    def embed(self, texts):
        with self._lock:
            self.calls += 1
            n = self.calls
        self.before_call(n)
        return super().embed(texts)

    def before_call(self, n: int) -> None:
        delay = float(os.environ.get("FAULT_DELAY_S", "0"))
        if delay:
            time.sleep(delay)


def clean():
    return Faulty()


class _RaiseOnce(Faulty):
    def before_call(self, n):
        if n == 1:
            raise RuntimeError("transient embedder failure (injected)")


def raise_once():
    return _RaiseOnce()


class _RaiseAlways(Faulty):
    def before_call(self, n):
        raise RuntimeError("embedder is broken (injected)")


def raise_always():
    return _RaiseAlways()


class _FailAfter(Faulty):
    def before_call(self, n):
        if n > int(os.environ["FAULT_AFTER"]):
            raise RuntimeError("embedder failed for good (injected)")


def fail_after():
    return _FailAfter()


class _Hang(Faulty):
    def before_call(self, n):
        if n >= int(os.environ.get("FAULT_AFTER", "1")):
            threading.Event().wait()  # hangs forever, on purpose


def hang():
    return _Hang()


class _Slow(Faulty):
    def before_call(self, n):
        time.sleep(float(os.environ.get("FAULT_DELAY_S", "0.02")))


def slow():
    return _Slow()


class _KillAtRandom(Faulty):
    """SIGKILLs its own process at a random moment after start-up (seeded)."""

    def __init__(self) -> None:
        super().__init__()
        rng = random.Random(int(os.environ["FAULT_SEED"]))
        delay = rng.uniform(0.0, float(os.environ.get("FAULT_WINDOW_S", "1.5")))
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()

    def before_call(self, n):
        time.sleep(float(os.environ.get("FAULT_DELAY_S", "0.005")))


def kill_at_random():
    return _KillAtRandom()


class _MutateTree(Faulty):
    """On the first call, edits one file and deletes another: files change mid-run."""

    def before_call(self, n):
        if n == 1:
            edit, gone = os.environ["FAULT_EDIT"], os.environ["FAULT_DELETE"]
            with open(edit, "a") as f:
                f.write("\n\ndef added_during_run():\n    return 42\n")
            os.unlink(gone)
        time.sleep(float(os.environ.get("FAULT_DELAY_S", "0.005")))


def mutate_tree():
    return _MutateTree()


class _WrongShape(Faulty):
    def embed(self, texts):
        return super().embed(texts)[:, :3]


def wrong_shape():
    return _WrongShape()


class _Other(HashEmbedder):
    """Another embedder (``hash-32``): switching to it must build a new generation.

    ``FAULT_DELAY_S`` slows each call (so a signal lands mid-rebuild); from call
    ``FAULT_HANG_AFTER`` on, every call hangs forever; with ``FAULT_RAISE`` every call fails.
    """

    def __init__(self) -> None:
        super().__init__(32)
        self.calls = 0
        self._count_lock = threading.Lock()

    def embed(self, texts):
        with self._count_lock:
            self.calls += 1
            n = self.calls
        if os.environ.get("FAULT_RAISE"):
            raise RuntimeError("the other embedder is broken (injected)")
        hang_after = os.environ.get("FAULT_HANG_AFTER")
        if hang_after and n >= int(hang_after):
            threading.Event().wait()
        delay = float(os.environ.get("FAULT_DELAY_S", "0"))
        if delay:
            time.sleep(delay)
        return super().embed(texts)


def other():
    return _Other()


def hang_store():
    """A clean embedder, plus a chunk store whose write number ``FAULT_STORE_CALL`` stalls
    for ``FAULT_STORE_HANG_S`` seconds (past --write-timeout) and then completes.

    ``FAULT_STORE_PHASE`` picks where it stalls: ``before`` the delete, ``between`` the
    delete and the add, or ``after`` the add. The stalled write still lands later, which
    is what a retry beside it would double.
    """
    from codesift.store import chunks

    original = chunks.ChunkStore.replace
    state = {"calls": 0}
    lock = threading.Lock()

    def replace(self, delete_paths, rows):
        with lock:
            state["calls"] += 1
            n = state["calls"]
        if n != int(os.environ.get("FAULT_STORE_CALL", "1")):
            return original(self, delete_paths, rows)
        stall = float(os.environ.get("FAULT_STORE_HANG_S", "3"))
        phase = os.environ.get("FAULT_STORE_PHASE", "between")
        if phase == "before":
            threading.Event().wait(stall)
            return original(self, delete_paths, rows)
        if phase == "after":
            original(self, delete_paths, rows)
            threading.Event().wait(stall)
            return None
        self.delete_paths(delete_paths)
        threading.Event().wait(stall)
        if rows is not None and rows.num_rows:
            self._table.add(rows)
        return None

    chunks.ChunkStore.replace = replace
    return Faulty()


GATE = threading.Event()  # in-process tests open it to let a gated embed call finish


class _Gated(Faulty):
    """In-process only: every embed call waits until the test sets :data:`GATE`."""

    def before_call(self, n):
        GATE.wait(120)  # bounded, so a broken test cannot hang the suite


def gated():
    return _Gated()
