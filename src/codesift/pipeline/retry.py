"""Retries with exponential backoff and full jitter, and a circuit breaker."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import StageError, WriterAbandonedError

T = TypeVar("T")

#: The longest ``Retry-After`` honoured; a server asking for more waits this long, and the
#: retry count still bounds the total.
RETRY_AFTER_MAX_S = 60.0


def _retry_hint(exc: BaseException) -> tuple[bool, float]:
    """What a failure says about retrying it: (retryable, least delay in seconds).

    Embedders classify their own failures (:class:`codesift.errors.EmbedderCallError`:
    ``retryable``, ``retry_after_s``); any other failure is retried with plain backoff.
    """
    retryable = getattr(exc, "retryable", True) is not False
    after = getattr(exc, "retry_after_s", None)
    wait = min(float(after), RETRY_AFTER_MAX_S) if isinstance(after, (int, float)) and after > 0 else 0.0
    return retryable, wait


@dataclass
class Backoff:
    base_s: float = 0.5
    max_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        return self.rng.uniform(0.0, min(self.max_s, self.base_s * (2**attempt)))


@dataclass
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures, whatever batch they came from."""

    threshold: int = 5
    consecutive: int = 0

    @property
    def open(self) -> bool:
        return self.consecutive >= self.threshold

    def success(self) -> None:
        self.consecutive = 0

    def failure(self) -> None:
        self.consecutive += 1


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    backoff: Backoff,
    breaker: CircuitBreaker,
    stage: str,
    batch: str,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Await ``call()``; on failure retry up to ``retries`` times, then raise StageError."""
    attempt = 0
    while True:
        try:
            result = await call()
        except WriterAbandonedError:
            raise  # the abandoned attempt may still run: a retry could write twice
        except Exception as exc:  # every failure is counted, retried or raised below
            breaker.failure()
            if breaker.open:
                raise StageError(
                    f"circuit breaker opened after {breaker.consecutive} consecutive failures",
                    stage=stage, batch=batch, cause=exc,
                ) from exc
            retryable, least_delay = _retry_hint(exc)
            if attempt >= retries or not retryable:
                raise StageError(
                    f"failed after {attempt + 1} attempt{'s' if attempt else ''}"
                    + ("" if retryable else " (not retryable)"),
                    stage=stage, batch=batch, cause=exc,
                ) from exc
            if on_retry is not None:
                on_retry(attempt + 1, exc)
            await asyncio.sleep(max(backoff.delay(attempt), least_delay))
            attempt += 1
        else:
            breaker.success()
            return result
