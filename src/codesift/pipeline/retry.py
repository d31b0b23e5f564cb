"""Retries with exponential backoff and full jitter, and a circuit breaker."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import StageError, WriterAbandonedError

T = TypeVar("T")


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
            if attempt >= retries:
                raise StageError(
                    f"failed after {attempt + 1} attempt{'s' if attempt else ''}",
                    stage=stage, batch=batch, cause=exc,
                ) from exc
            if on_retry is not None:
                on_retry(attempt + 1, exc)
            await asyncio.sleep(backoff.delay(attempt))
            attempt += 1
        else:
            breaker.success()
            return result
