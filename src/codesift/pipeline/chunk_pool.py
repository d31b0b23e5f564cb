"""Chunking in a worker process, for embedders cheaper than chunking.

With ``hash`` or ``static``, embedding costs less than parsing, so the run is bounded by
one interpreter's GIL: chunking, embedding and writing take turns. A worker process
takes the chunking off it (issue 9, item 5). With a model, the model is the bound and
threads are enough, so the pool is only used for cheap embedders, and only once a run has
:data:`MIN_FILES` files to chunk (starting a process costs about 0.3 s).

The rules it keeps:

* **Deadlines.** Each file has the chunking deadline it has on a thread. A worker past it
  is killed with the pool, the file is recorded as failed (as on a thread), and the run
  chunks the rest on threads.
* **No orphans.** Workers are ``spawn``-ed children that exit when their parent dies (Linux
  ``PR_SET_PDEATHSIG``, and a parent-pid check everywhere), and :meth:`ChunkPool.close`
  kills them when the reader stage ends, whichever way it ends.
* **A crash stays a file's problem.** A worker that dies (a parser crash on a hostile
  file) fails that file with a reason, and the run goes on with threads.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

log = logging.getLogger("codesift.pipeline")

MIN_FILES = 200

_counter = None  # the worker's token counter (set by _init)


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


def _init(spec: str, parent: int) -> None:
    """In the worker: die with the parent, and build the token counter of ``spec``."""
    global _counter
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass  # not Linux: the parent-pid check below still ends it
    if os.getppid() != parent:
        os._exit(0)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    from ..embedding import count_tokens_for, load_embedder

    try:
        _counter = count_tokens_for(load_embedder(spec))
    except Exception as exc:  # noqa: BLE001 - reported: start() sees no counter and the run uses threads
        print(f"codesift chunking process: cannot load {spec!r}: {type(exc).__name__}: {exc}", file=sys.stderr,
              flush=True)


def _ready() -> bool:
    return _counter is not None


def _chunk(path, text, budget, parse_timeout_s, hard_limit):
    from . import stages

    return stages.chunk_file(path, text, count_tokens=_counter, max_tokens=budget,
                             parse_timeout_s=parse_timeout_s, hard_limit=hard_limit)


class PoolFailed(Exception):
    """The worker could not chunk this file (it died or hung); the reason says which."""


class ChunkPool:
    def __init__(self, spec: str, workers: int = 1) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init,
                                             initargs=(spec, os.getpid()))
        self.broken: str | None = None

    async def start(self, timeout_s: float) -> bool:
        """Start the worker and wait until it can chunk (its token counter loaded); False,
        with ``broken`` saying why, when it cannot: the run then uses threads, and no
        file is blamed for the pool's start."""
        try:
            async with asyncio.timeout(timeout_s):
                if await asyncio.wrap_future(self._executor.submit(_ready)):
                    return True
            self._fail("the chunking process could not load the token counter")
        except TimeoutError:
            self._fail(f"the chunking process did not start within {timeout_s:g}s")
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            self._fail(f"the chunking process could not start ({type(exc).__name__}: {exc})")
        return False

    async def chunk(self, path: str, text: str, budget: int, parse_timeout_s: float, hard_limit: bool,
                    *, timeout_s: float):
        """The file's :class:`stages.ChunkResult`; :class:`PoolFailed` when the worker died
        or passed the deadline (the pool is then closed: the caller uses threads)."""
        try:
            fut = self._executor.submit(_chunk, path, text, budget, parse_timeout_s, hard_limit)
        except (BrokenProcessPool, RuntimeError) as exc:
            self._fail(f"the chunking process is gone ({exc})")
            raise PoolFailed(self.broken) from exc
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.wrap_future(fut)
        except TimeoutError as exc:
            self._fail(f"chunking did not finish within {timeout_s:g}s in the chunking process")
            raise PoolFailed(self.broken) from exc
        except BrokenProcessPool as exc:
            self._fail("the chunking process died while chunking this file")
            raise PoolFailed(self.broken) from exc

    def _fail(self, reason: str) -> None:
        if self.broken is None:
            self.broken = reason
            log.warning("%s; chunking the rest on threads", reason)
        self.close()

    def close(self) -> None:
        """End the workers now: chunking keeps no state, so they are killed, not drained
        (bounded: a second per worker to be reaped)."""
        procs = list((getattr(self._executor, "_processes", None) or {}).values())
        self._executor.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            p.join(1.0)
