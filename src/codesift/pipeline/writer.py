"""The single-owner committer: one thread makes every SQLite and LanceDB call of a run.

Why one owner:

* **No double writes by construction.** Calls run one at a time, in submission order,
  on one thread. A call that passes its deadline is *abandoned*: it may still be inside
  LanceDB, so nothing else is ever submitted behind it (every later call fails at once
  with :class:`~codesift.errors.WriterAbandonedError`) and it is never retried. The run
  fails with a clear message; the journal entries it left are reconciled by the next
  run. A retry can therefore never overlap an earlier attempt.
* **The event loop never blocks on SQLite.** The manifest's and the embedding cache's
  calls (busy timeouts of seconds) run here, so the monitor and the stall watchdog keep
  ticking while a write waits.
* **The writer lock is released only when nothing can touch the store.** The owner of
  the lock hands its release to :meth:`StoreWriter.close`: when the thread ends, the
  lock is released; when it cannot end (a hung call), the release runs on that thread,
  after the call returns, and the caller is told.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from ..errors import WriterAbandonedError

log = logging.getLogger("codesift.pipeline")

T = TypeVar("T")
_STOP = object()
_IDLE_POLL_S = 1.0  # the idle thread re-checks for a stop this often (its only wait)


def _settle(fut: asyncio.Future, result: object, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


class StoreWriter:
    """A long-lived daemon thread that runs store calls in order, each with a deadline."""

    def __init__(self, name: str = "codesift-writer") -> None:
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._abandoned: str | None = None
        self._current: str | None = None
        self._stopped = threading.Event()
        self._after: list[Callable[[], None]] = []
        self._after_lock = threading.Lock()
        self._thread.start()

    # ------------------------------------------------------------------ the thread
    def _main(self) -> None:
        try:
            while True:
                try:
                    item = self._q.get(timeout=_IDLE_POLL_S)
                except queue.Empty:
                    continue  # idle: wait for the next call or the stop
                if item is _STOP:
                    return
                fn, args, what, loop, fut = item
                self._current = what
                try:
                    result = fn(*args)
                except BaseException as exc:  # handed to the awaiting side, which raises it
                    outcome: tuple[object, BaseException | None] = (None, exc)
                else:
                    outcome = (result, None)
                finally:
                    self._current = None
                try:
                    loop.call_soon_threadsafe(_settle, fut, *outcome)
                except RuntimeError:
                    pass  # the loop is closed: nobody waits for this result any more
        finally:
            self._stopped.set()
            with self._after_lock:
                after, self._after = self._after, []
            for fn in after:
                try:
                    fn()
                except OSError as exc:  # releasing a lock fd: nothing to retry, say so
                    log.error("clean-up after the store writer ended failed: %s", exc)

    # ------------------------------------------------------------------ callers
    @property
    def abandoned(self) -> str | None:
        """What passed its deadline and may still be running (None: nothing)."""
        return self._abandoned

    @property
    def alive(self) -> bool:
        return not self._stopped.is_set()

    def busy_with(self) -> str | None:
        return self._current

    async def call(self, fn: Callable[..., T], *args: object, timeout_s: float, what: str,
                   stage: str = "write") -> T:
        """Run ``fn(*args)`` on the writer thread; the awaiting side gives up at ``timeout_s``.

        A timeout abandons the writer for good (see the module docstring). Cancellation
        of the awaiting task does not cancel the call: it completes on the thread, and
        the next call queues behind it.
        """
        if self._abandoned is not None:
            raise WriterAbandonedError(
                f"cannot {what}: an earlier store call ({self._abandoned}) passed its deadline and may still "
                "be running, so nothing more is written in this run; the next run reconciles", stage=stage)
        if self._stopped.is_set():
            raise WriterAbandonedError(f"cannot {what}: the store writer has stopped", stage=stage)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._q.put((fn, args, what, loop, fut))
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(fut)
        except TimeoutError as exc:
            self._abandoned = what
            raise WriterAbandonedError(
                f"{what} did not finish within {timeout_s:g}s; it may still be running, so it is not retried "
                "and this run writes nothing more; the next run reconciles from the journal",
                stage=stage) from exc

    def close(self, timeout_s: float, then: Callable[[], None] | None = None) -> bool:
        """Stop the thread once its queued calls are done; True when it ended in time.

        ``then`` (e.g. releasing the writer lock) runs as soon as the thread has ended:
        here when it ended within ``timeout_s``, otherwise on the thread itself, after its
        stuck call returns. Either way it never runs while a store call can still run.
        """
        if then is not None:
            with self._after_lock:
                if self._stopped.is_set():
                    run_now = True
                else:
                    self._after.append(then)
                    run_now = False
            if run_now:
                then()
        self._q.put(_STOP)
        self._stopped.wait(timeout_s)
        return self._stopped.is_set()
