"""A cancel token: a stop request that any thread can make, honoured like SIGINT.

``run_index``, ``Index.index()`` and the watcher accept one. Cancelling does exactly what
the first SIGINT does (stop intake, finish and commit the files in flight within the
shutdown deadline, return an ``interrupted`` result), because it calls the same stop
path; there is no second, less tested way to stop a run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class CancelToken(threading.Event):
    """A ``threading.Event`` (so it can stand in for a stop event) that also runs callbacks."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], None]] = []
        self._cb_lock = threading.Lock()
        self.reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask every run holding this token to stop; idempotent, callable from any thread."""
        if self.reason is None:
            self.reason = reason
        self.set()

    @property
    def cancelled(self) -> bool:
        return self.is_set()

    def set(self) -> None:
        super().set()
        with self._cb_lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            cb()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` on cancel (at once if already cancelled); returns an unsubscribe."""
        with self._cb_lock:
            self._callbacks.append(callback)
        if self.is_set():
            callback()

        def unsubscribe() -> None:
            with self._cb_lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe
