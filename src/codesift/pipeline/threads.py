"""Blocking calls with a deadline, on daemon threads.

``loop.run_in_executor`` uses a ThreadPoolExecutor whose workers are joined at
interpreter exit, so one hung call (an embedder stuck in native code) keeps the process
alive forever. Here each call gets its own daemon thread: the awaiting side gives up at
the deadline, and an abandoned thread can never hold the process open.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

from ..errors import StageTimeoutError

T = TypeVar("T")


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
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.shield(fut)
    except TimeoutError as exc:
        raise StageTimeoutError(
            f"{what} did not finish within {timeout_s:g}s", stage=stage, path=path, batch=batch
        ) from exc
