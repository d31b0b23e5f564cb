"""Memory backpressure: watch this process's RSS against a limit, never wait forever."""

from __future__ import annotations

import asyncio
import gc
import os
import time

from ..errors import MemoryLimitError

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_POLL_S = 0.1


def rss_bytes() -> int:
    """Resident set size of this process (cheap: one read of /proc/self/statm)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class MemoryGuard:
    """Admission control: stages call :meth:`admit` before taking more work.

    Above the limit, ``under_pressure`` turns on (the embed stage halves its batches)
    and the caller pauses until RSS falls below the limit; if it does not within
    ``wait_timeout_s``, :class:`MemoryLimitError` names the stage, the RSS and the limit.
    """

    def __init__(self, limit: int, wait_timeout_s: float, rss=rss_bytes) -> None:
        self.limit = limit
        self.wait_timeout_s = wait_timeout_s
        self._rss = rss
        self.peak = 0
        self.under_pressure = False

    def sample(self) -> int:
        rss = self._rss()
        self.peak = max(self.peak, rss)
        return rss

    async def admit(self, stage: str) -> None:
        await self._admit_rss(stage)
        await self._admit_gpu(stage)

    async def _admit_gpu(self, stage: str) -> None:
        """GPU memory of CUDA embedders (limits registered by :mod:`codesift.embedding.device`):
        the same wait, deadline and error as RSS. A no-op when no CUDA embedder is loaded."""
        from ..embedding.device import gpu_pressure

        over = gpu_pressure()
        if over is None:
            return
        self.under_pressure = True
        deadline = time.monotonic() + self.wait_timeout_s
        while over is not None:
            what, used, limit = over
            if time.monotonic() >= deadline:
                raise MemoryLimitError(
                    f"{what}: memory used {format_bytes(used)} stayed above its limit {format_bytes(limit)} "
                    f"for {self.wait_timeout_s:g}s (--gpu-memory-limit, --memory-wait-timeout)",
                    stage=stage,
                )
            await asyncio.sleep(_POLL_S)
            over = gpu_pressure()
        self.under_pressure = False

    async def _admit_rss(self, stage: str) -> None:
        rss = self.sample()
        if rss <= self.limit:
            self.under_pressure = False
            return
        self.under_pressure = True
        deadline = time.monotonic() + self.wait_timeout_s
        gc.collect()
        while True:
            rss = self.sample()
            if rss <= self.limit:
                self.under_pressure = False
                return
            if time.monotonic() >= deadline:
                raise MemoryLimitError(
                    f"RSS {format_bytes(rss)} stayed above the memory limit {format_bytes(self.limit)} "
                    f"for {self.wait_timeout_s:g}s (--memory-limit, --memory-wait-timeout)",
                    stage=stage,
                )
            await asyncio.sleep(_POLL_S)
