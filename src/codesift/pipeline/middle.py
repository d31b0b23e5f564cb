"""The middle stages (read → chunk → embed) as a strategy of the one run driver.

:class:`~.supervisor.IndexRun` drives every run: planning, discovery, the writer and
committer, the manifest, shutdown and telemetry. Only the middle differs by engine:
the local engine runs it as asyncio tasks (:class:`~.supervisor.LocalMiddle`), the Ray
engine as Ray Data tasks and an embed actor pool (:class:`~.ray_engine.RayMiddle`).
A strategy never reaches into the driver: what it needs is handed over in a
:class:`MiddleContext`. This module holds the contract and the factory, so the driver
and the Ray engine never import each other.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import IndexConfig
from ..store.manifest import FileRecord
from .telemetry import RunStats

END = object()  # end-of-stream marker in every queue
READ_Q_SIZE = 256
WRITE_Q_SIZE = 64


@dataclass(frozen=True)
class MiddleContext:
    """What the driver lends a middle strategy for one run (explicit, so no strategy
    depends on the driver's private state).

    ``get``/``put`` are the driver's queue waits, each under the queue deadline and
    counted in the stage telemetry; ``stopping`` is the shutdown signal (SIGINT,
    SIGTERM, a cancel token); ``previous`` looks up a file's committed manifest record;
    ``embedder`` loads (or returns) the run's embedder; ``current_embedder`` is the one
    loaded so far; ``note_problem`` records a skipped or failed file for the summary.
    """

    cfg: IndexConfig
    stats: RunStats
    stopping: Callable[[], bool]
    get: Callable[[asyncio.Queue, str, str], Awaitable[object]]
    put: Callable[[asyncio.Queue, object, str, str], Awaitable[None]]
    previous: Callable[[str], FileRecord | None]
    embedder: Callable[[], Awaitable[Any]]
    current_embedder: Callable[[], Any]
    note_problem: Callable[[str, str, str | None], None]


class MiddleStages(Protocol):
    """Read, chunk and embed the files of ``read_q``; put one write item per file (and
    ``END`` last) on ``write_q``."""

    #: Whether the driver may open the chunk table early, while the first files are in
    #: flight (the Ray engine opens it at the first write).
    prefetch_store: bool

    def check(self) -> None:
        """Refuse before the run starts (e.g. an optional dependency is missing)."""

    def driver_embedder(self, spec: str) -> Any | None:
        """The embedder the driver uses when none is loaded: None loads it on the driver;
        the Ray engine returns an identity (name, dim) and loads models on its workers."""

    def stages(self, ctx: MiddleContext, read_q: asyncio.Queue, write_q: asyncio.Queue,
               done: asyncio.Event) -> tuple[dict[str, asyncio.Queue], dict[str, Coroutine]]:
        """The extra queues (name → queue, for the live status) and the tasks (name →
        coroutine) the driver runs in its task group beside discover, write and the
        monitor. ``done`` is set when the writer has finished."""

    async def close(self) -> None:
        """Release what the strategy started (bounded); runs after the driver's run."""


# engine name -> (module, class) of its strategy; "local" is the driver's own stages.
ENGINES: dict[str, tuple[str, str]] = {"ray": ("codesift.pipeline.ray_engine", "RayMiddle")}


def middle_stages(cfg: IndexConfig) -> MiddleStages | None:
    """The middle strategy for ``cfg.engine``, imported lazily (Ray is optional);
    None for the local engine."""
    where = ENGINES.get(cfg.engine)
    if where is None:
        return None
    module, name = where
    return getattr(importlib.import_module(module), name)(cfg)
