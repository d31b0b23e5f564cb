"""Blocking calls with a deadline, on daemon threads.

``loop.run_in_executor`` uses a ThreadPoolExecutor whose workers are joined at
interpreter exit, so one hung call (an embedder stuck in native code) keeps the process
alive forever. Here each call gets its own daemon thread: the awaiting side gives up at
the deadline, and an abandoned thread can never hold the process open.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import StageTimeoutError

T = TypeVar("T")
log = logging.getLogger("codesift.pipeline")
_KEEPER_POLL_S = 0.5

_tracker: contextvars.ContextVar["ThreadTracker | None"] = contextvars.ContextVar("codesift_threads", default=None)


class ThreadTracker:
    """The daemon threads one run started, so it can say which still run when it returns.

    A run activates its tracker; every :func:`run_in_thread` under it (tasks inherit the
    context) registers its thread. At the end the run waits a bounded grace for them and
    reports the ones still alive (a hung embed call cannot be stopped from outside).
    """

    def __init__(self) -> None:
        self._threads: dict[threading.Thread, str] = {}
        self._lock = threading.Lock()

    def activate(self) -> contextvars.Token:
        return _tracker.set(self)

    def deactivate(self, token: contextvars.Token) -> None:
        _tracker.reset(token)

    def add(self, thread: threading.Thread, what: str) -> None:
        with self._lock:
            self._threads = {t: w for t, w in self._threads.items() if t.is_alive()}
            self._threads[thread] = what

    def live(self) -> list[str]:
        with self._lock:
            return [f"{t.name}: {w}" for t, w in self._threads.items() if t.is_alive()]

    def wait(self, timeout_s: float) -> list[str]:
        """Wait up to ``timeout_s`` for every tracked thread; return those still alive."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return self.live()

    def when_all_done(self, fn: Callable[[], None], until: Callable[[], bool] = lambda: True) -> threading.Thread:
        """Run ``fn`` on a daemon keeper thread once every tracked thread has ended and
        ``until()`` holds (used to release the writer lock only when nothing can still
        touch the store). It polls with a deadline per wait and holds no process open."""
        def keep() -> None:
            while self.live() or not until():
                with self._lock:
                    alive = [t for t in self._threads if t.is_alive()]
                if alive:
                    alive[0].join(_KEEPER_POLL_S)
                else:
                    time.sleep(_KEEPER_POLL_S)  # waiting for the writer thread to end
            try:
                fn()
            except OSError as exc:
                log.error("releasing after the last codesift thread ended failed: %s", exc)
            log.info("the last codesift thread of the run ended; writer lock released")

        keeper = threading.Thread(target=keep, name="codesift-lock-keeper", daemon=True)
        keeper.start()
        return keeper


def _settle(fut: asyncio.Future, result: object, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


async def run_in_thread(
    fn: Callable[..., T],
    *args: object,
    timeout_s: float,
    stage: str,
    what: str,
    path: str | None = None,
    batch: str | None = None,
) -> T:
    """Run ``fn(*args)`` on a daemon thread; raise StageTimeoutError after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, which raises it
            outcome: tuple[object, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        try:
            loop.call_soon_threadsafe(_settle, fut, *outcome)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for this result any more

    thread = threading.Thread(target=target, name=f"codesift-{stage}", daemon=True)
    thread.start()
    tracker = _tracker.get()
    if tracker is not None:
        tracker.add(thread, what + (f" ({batch})" if batch else f" ({path})" if path else ""))
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.shield(fut)
    except TimeoutError as exc:
        raise StageTimeoutError(
            f"{what} did not finish within {timeout_s:g}s", stage=stage, path=path, batch=batch
        ) from exc
