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
