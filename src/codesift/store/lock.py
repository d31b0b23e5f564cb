"""One writer per index directory.

``flock`` is released by the kernel when the holder dies, SIGKILL included, so a
crashed run never leaves a stale lock behind. The holder's pid is written into the
file so a refused run can say who holds it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from ..errors import IndexLockedError

_POLL_S = 0.1


class WriterLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def holder_pid(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _try(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def acquire(self, wait_s: float | None = None) -> None:
        """Take the lock; with ``wait_s`` wait at most that long, else fail at once."""
        deadline = time.monotonic() + (wait_s or 0.0)
        while not self._try():
            if wait_s is None or time.monotonic() >= deadline:
                pid = self.holder_pid()
                who = f"pid {pid}" if pid else "another process"
                hint = "pass --wait to wait for it" if wait_s is None else f"gave up after waiting {wait_s:g}s"
                raise IndexLockedError(
                    f"index {self.path.parent} is locked by {who} (another codesift index is running); {hint}",
                    stage="lock",
                )
            time.sleep(_POLL_S)

    def is_held_elsewhere(self) -> bool:
        """True when another live process holds the lock (readers use this for status)."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "WriterLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
