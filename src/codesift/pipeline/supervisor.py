"""The local engine: the stage functions driven under structured concurrency.

Deadlines use ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11,
``wait_for`` wraps the awaitable in a task of its own, and a cancellation that lands
while that inner task is finishing can be lost, leaving the cancelled stage waiting
forever on a queue whose consumer is gone (seen here on a full disk).

Stages (one task each) are joined by bounded queues::

    discover ──read_q──▶ read+chunk ──embed_q──▶ embed ──write_q──▶ write

plus a monitor task (live status, RSS, stall watchdog). They run in one
``asyncio.TaskGroup``: when any stage fails, every other stage is cancelled, the
files that were completely embedded are committed, and the error propagates. Every
wait has a deadline: queue puts and gets, each blocking call (run on a daemon thread,
see :mod:`.threads`), memory backpressure, and the stall watchdog over all of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import IndexConfig
from ..errors import (
    CodesiftError,
    EmbedderMismatchError,
    InterruptedRun,
    StageError,
    StageTimeoutError,
    StallError,
    StoreError,
    WriterAbandonedError,
)
from ..models import FileEntry, FileWork, SkippedFile
from ..store.generations import Generations
from ..store.layout import GenerationLayout, IndexLayout
from ..store.lock import WriterLock
from ..store.manifest import STATUS_ERROR, STATUS_INDEXED, STATUS_SKIPPED, FileRecord, Manifest
from . import stages
from .items import WriteItem, complete, outcome_item
from .memory import MemoryGuard
from .middle import END as _END
from .middle import READ_Q_SIZE, WRITE_Q_SIZE, MiddleContext, MiddleStages, middle_stages
from .retry import Backoff, CircuitBreaker, call_with_retries
from .telemetry import RunStats, dump_stacks, write_json_atomic
from .cancel import CancelToken
from .threads import ThreadTracker, run_in_thread
from .writer import StoreWriter

log = logging.getLogger("codesift.pipeline")

EMBED_Q_SIZE = 32
CHEAP_BATCH = 256  # chunks per embed call at least, for a cheap embedder (_batch_size)
DISCOVER_BATCH = 512
MONITOR_INTERVAL_S = 1.0
LEXICAL_FLUSH_S = 0.25  # the fast tier commits at least this often while it has rows
# the pipeline's reading and the LanceDB import wait at most this long for the fast tier
# (a tree of ~5,000 chunks is done by then; a bigger one shares the cores from there on)
LEXICAL_HEAD_START_S = 5.0
ANN_BUILD_ROWS_PER_S = 800  # the slowest rate an ANN graph build is allowed (its deadline)
SEARCH_INDEX_ROWS_PER_S = 1000  # the same for rebuilding LanceDB's full-text and scalar indexes
QUERY_COPY_BATCH = 2048  # rows per writer call when the query tables are copied from the chunk table
CLOSE_GRACE_S = 2.0  # at the end of a run, how long its threads may take to finish


@dataclass
class RunResult:
    status: str  # ok | failed | interrupted
    stats: RunStats
    duration_s: float
    error: CodesiftError | None = None
    exit_code: int = 0
    strict_problems: list[dict] = field(default_factory=list)
    embedder: object | None = None  # the loaded embedder, for a caller's next run
    rebuild: dict | None = None  # {"generation", "reason", "swapped"} when this run built a new generation
    # Threads of this run still running work when it returned (a hung embed call): the
    # writer lock stays held until they end, and lock_released says so.
    live_threads: list[str] = field(default_factory=list)
    lock_released: bool = True

    def summary(self) -> dict:
        s = self.stats
        return {
            "status": self.status,
            "files": {
                "seen": s.files_seen,
                "indexed": s.files_indexed,
                "unchanged": s.files_unchanged,
                "deleted": s.files_deleted,
                "skipped": s.skipped,
                "notes": s.notes,
            },
            "chunks": {"written": s.chunks_written, "deleted": s.chunks_deleted, "total": s.chunks_total,
                       "embedded": s.chunks_embedded, "from_cache": s.chunks_cached},
            "retries": s.retries,
            "lexical": {"files": s.lexical_files, "chunks": s.lexical_chunks,
                        "first_s": None if s.lexical_first_s is None else round(s.lexical_first_s, 3),
                        "done_s": None if s.lexical_done_s is None else round(s.lexical_done_s, 3)},
            "ann": s.ann,
            "stages": {name: {"busy_s": round(st.busy_s, 3), "wait_s": round(st.wait_s, 3)}
                       for name, st in s.stages.items()},
            "peak_rss_bytes": s.peak_rss,
            "duration_s": round(self.duration_s, 3),
            "error": self.error.as_dict() if self.error else None,
            "rebuild": self.rebuild,
            "live_threads": self.live_threads,
        }


def embedder_identity(spec: str) -> tuple[str, int] | None:
    """(name, dim) of a built-in embedder without loading it; None when unknown."""
    from ..embedding.identity import builtin_identity

    return builtin_identity(spec)


class IndexRun:
    """One ``codesift index`` run over a tree. Use :func:`run_index` to drive it.

    The one driver of every engine: the middle stages (read → chunk → embed) are a
    strategy (:mod:`.middle`), chosen by ``cfg.engine`` unless ``middle`` is given.
    """

    def __init__(self, cfg: IndexConfig, *, on_tick: Callable[[dict], None] | None = None,
                 embedder=None, cancel: CancelToken | None = None, middle: MiddleStages | None = None) -> None:
        self.cfg = cfg
        self.middle: MiddleStages = middle if middle is not None else (middle_stages(cfg) or LocalMiddle(self))
        self.layout = IndexLayout(cfg.index_dir)
        self.gens = Generations(self.layout)
        # The generation this run writes: the current one, or a rebuild beside it (_plan).
        self.target: GenerationLayout | None = None
        self.rebuild: dict | None = None
        # Every SQLite and LanceDB call of the run goes through this one thread (writer.py).
        self.writer: StoreWriter | None = None
        self.threads = ThreadTracker()
        self.stats = RunStats()
        self.memory = MemoryGuard(cfg.memory_limit, cfg.deadlines.memory_wait)
        self.on_tick = on_tick
        self.stopping = False
        self._stop_signal: int | None = None
        self._stop_reason: str | None = None
        self._cancel = cancel
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline_cancelled = False
        # A caller that runs many cycles (watch, MCP) passes its loaded embedder in.
        self._embedder = embedder
        self._embedder_lock = asyncio.Lock()
        self._count_tokens = None
        self._store = None
        self._manifest: Manifest | None = None
        self._files: dict[str, FileRecord] = {}
        self._write_buffer: list[WriteItem] = []
        self._inflight_write: asyncio.Future | None = None
        self._writer_failed = False
        self._write_q: asyncio.Queue | None = None
        self._batch_no = 0
        self._queues: dict[str, asyncio.Queue] = {}
        self._cache = None
        self._cache_disabled = False
        self._tg: asyncio.TaskGroup | None = None
        self._stage_tg: asyncio.TaskGroup | None = None
        self._lexical_started = False
        self._stages_done = asyncio.Event()
        self._lexical_done = asyncio.Event()
        self._t0 = time.monotonic()
        self._prefetching = False
        self._store_lock = asyncio.Lock()

    # ------------------------------------------------------------------ helpers
    async def _w(self, fn, *args, what: str, **kwargs):
        """Run a store call (manifest, chunk table, embedding cache) on the writer thread."""
        call = functools.partial(fn, *args, **kwargs) if kwargs else fn
        return await self.writer.call(call, *(() if kwargs else args), timeout_s=self.cfg.deadlines.write,
                                      what=what)

    async def _put(self, q: asyncio.Queue, item: object, stage: str, qname: str) -> None:
        st = self.stats.stage(stage)
        st.waiting()
        try:
            async with asyncio.timeout(self.cfg.deadlines.queue):
                await q.put(item)
        except TimeoutError as exc:
            raise StageTimeoutError(f"queue {qname} stayed full for {self.cfg.deadlines.queue:g}s",
                                    stage=stage) from exc
        finally:
            st.busy()

    async def _get(self, q: asyncio.Queue, stage: str, qname: str) -> object:
        st = self.stats.stage(stage)
        st.waiting()
        try:
            async with asyncio.timeout(self.cfg.deadlines.queue):
                return await q.get()
        except TimeoutError as exc:
            raise StageTimeoutError(f"queue {qname} stayed empty for {self.cfg.deadlines.queue:g}s",
                                    stage=stage) from exc
        finally:
            st.busy()

    async def _get_embedder(self):
        async with self._embedder_lock:
            if self._embedder is None:
                self._embedder = self.middle.driver_embedder(self.cfg.embedder)
            if self._count_tokens is None:
                from ..embedding import count_tokens_for, load_embedder

                emb = self._embedder
                if emb is None:
                    emb = await run_in_thread(lambda: load_embedder(self.cfg.embedder, threads=self.cfg.threads),
                                              timeout_s=self.cfg.deadlines.model_load, stage="embed",
                                              what=f"loading embedder {self.cfg.embedder!r}")
                self._count_tokens = count_tokens_for(emb)
                self._embedder = emb
            return self._embedder

    @staticmethod
    def _check_identity(meta: dict, name: str, dim: int) -> None:
        have = meta.get("embedder")
        if have and (have != name or int(meta.get("dim", dim)) != dim):
            raise EmbedderMismatchError(
                f"this index was built with embedder {have} (dim {meta.get('dim')}); this run uses "
                f"{name} (dim {dim}). Pass --full to rebuild the index with {name}",
            )

    def _prefetch_store(self) -> None:
        """Start opening the chunk table (importing LanceDB takes ~1 s) while the first
        files are read, chunked and embedded, instead of when the first write is due."""
        if self._store is None and self._tg is not None and not self._prefetching:
            self._prefetching = True
            self._tg.create_task(self._get_store(), name="open-store")

    async def _get_store(self):
        await self._after_fast_tier()  # the import's pure-Python work holds the GIL
        async with self._store_lock:
            return await self._open_store()

    async def _open_store(self):
        if self._store is None:
            from ..store.chunks import ChunkStore

            from ..store.chunks import _import_lancedb

            # The import (~1 s) is no store call: it runs beside the writer, so cache and
            # manifest calls queued on the writer do not wait behind it.
            await run_in_thread(_import_lancedb, timeout_s=self.cfg.deadlines.model_load, stage="write",
                                what="importing LanceDB")
            self._store = await self._w(functools.partial(ChunkStore, self.target.lancedb, writer=True),
                                        what="opening the chunk table")
        return self._store

    # ------------------------------------------------------------------ set-up
    async def _identity(self) -> tuple[str, int]:
        """(name, dim) of this run's embedder; a ``python:`` spec is loaded to learn it."""
        if self._embedder is not None:
            return self._embedder.name, self._embedder.dim
        ident = embedder_identity(self.cfg.embedder)
        if ident is None:
            emb = await self._get_embedder()
            ident = (emb.name, emb.dim)
        return ident

    async def _plan(self) -> None:
        """Choose the generation this run writes.

        The current generation takes an ordinary incremental run. ``--full`` and a change
        of chunking version start a new generation beside it (after a disk check); an
        unfinished rebuild for this run's embedder is resumed. The current generation is
        only replaced when a rebuild completes (the swap in :meth:`run`).
        """
        try:
            state = self.gens.prepare()
        except OSError as exc:
            raise StoreError(f"cannot prepare the generations of {self.cfg.index_dir}: {exc.strerror or exc}",
                             stage="store", cause=exc) from exc
        current, pending = state.current, state.pending
        ident = await self._identity()
        cur_meta, cur_has_data = await self._w(_peek, current, what="reading the current manifest")
        pend_meta = await self._w(_peek, pending, what="reading the rebuild's manifest") if pending else None
        if pending is not None and not pend_meta[0].get("embedder"):
            pending = None  # begun but never described (a crash right after begin): nothing to resume
            self.gens.discard(state.pending)
        reason = None
        if self.cfg.full:
            if pending is not None:
                log.info("--full: restarting the unfinished rebuild %s", pending.name)
                try:
                    self.gens.discard(pending)
                except OSError as exc:
                    raise StoreError(f"cannot remove the unfinished rebuild {pending.name}: {exc.strerror or exc}",
                                     stage="store", cause=exc) from exc
                pending = None
            reason = "--full"
        elif pending is not None and _same_embedder(pend_meta[0], ident):
            self.gens.check_room(current, pending)
            meta = pend_meta[0]
            self.target = pending
            self.rebuild = {"generation": pending.name, "reason": meta.get("rebuild_reason", "resumed"),
                            "resumed": True, "swapped": False}
            log.info("resuming the unfinished rebuild %s", pending.name)
            return
        if reason is None:
            self._check_identity(cur_meta, *ident)
            have = cur_meta.get("chunking", stages.CHUNKING_VERSION)
            if cur_has_data and have != stages.CHUNKING_VERSION:
                reason = f"chunking version {have} -> {stages.CHUNKING_VERSION}"
            else:
                if pending is not None:
                    log.warning("an unfinished rebuild (%s, embedder %s) is left as it is: run index with that "
                                "embedder to resume it, or --full to restart", pending.name,
                                pend_meta[0].get("spec"))
                self.target = current
                return
        self.gens.check_room(current)
        try:
            gen = self.gens.begin()
        except OSError as exc:
            raise StoreError(f"cannot start a new generation in {self.cfg.index_dir}: {exc.strerror or exc}",
                             stage="store", cause=exc) from exc
        meta = dict(embedder=ident[0], dim=str(ident[1]), spec=self.cfg.embedder,
                    chunking=stages.CHUNKING_VERSION, rebuild_reason=reason, rebuild_started_at=str(time.time()))
        await self._w(_init_generation, gen, meta, what="starting the new generation's manifest")
        self.target = gen
        self.rebuild = {"generation": gen.name, "reason": reason, "resumed": False, "swapped": False}
        log.info("building generation %s beside the current one (%s)", gen.name, reason)

    async def _reconcile(self) -> None:
        """Delete rows the manifest does not vouch for; forget their files."""
        m = self._manifest
        pending = await self._w(m.pending_paths, what="reading the journal")
        if pending:
            log.info("reconciling %d file(s) left in flight by an interrupted run", len(pending))
            store = await self._get_store()
            await self._w(store.delete_paths, pending, what="removing rows of interrupted writes")
            await self._w(m.forget, pending, what="forgetting files of interrupted writes")

    async def _complete_query_tables(self) -> None:
        """Copy the chunk table into the manifest's query tables when they are not complete
        (an index written before they existed): once, then every commit keeps them."""
        from ..store import query_tables

        m = self._manifest
        meta = await self._w(m.meta, what="reading the manifest meta")
        if query_tables.complete(meta):
            return
        # One writer call per batch, each within the write deadline and one batch of memory;
        # the tables count as complete only after the last (query_tables: reset, copy_batch).
        store = await self._get_store()
        await self._w(m.reset_query_tables, what="starting the query tables' copy of the chunk table")
        cols = await self._w(query_tables.source_columns, store, what="reading the chunk table's columns")
        batches = await self._w(store.scan_batches, cols, QUERY_COPY_BATCH, what="opening a scan of the chunk table")
        vouched = {p: r.file_hash for p, r in self._files.items() if r.status == STATUS_INDEXED}
        copied = 0
        while (n := await self._w(_copy_next, m, batches, vouched,
                                  what="copying a batch of the chunk table into the query tables")) is not None:
            copied += n
            if self.stopping:  # the copy is not marked complete: the next run starts it again
                raise self._interrupted()
        await self._w(m.mark_query_tables_complete, what="marking the query tables complete")
        log.info("query tables built from the chunk table: %d row(s)", copied)

    async def _clear_lexical(self, *, at_end: bool = False) -> None:
        """The fast tier's rows live only while a run makes their vectors: cleared at the
        start (a killed run's) and at the end (files this run never reached)."""
        try:
            await self._w(self._manifest.clear_lexical, what="clearing the fast tier's rows")
        except StoreError as exc:
            if not at_end:
                raise
            # The run's outcome stands; the rows are real text of the tree, and the next
            # run's start clears them.
            log.warning("the fast tier's rows were not cleared (%s); the next run clears them", exc.one_line())

    async def _check_orphans(self, store) -> None:
        """A cheap count check; on mismatch, a scan removes rows nobody vouches for."""
        expected = sum(r.chunk_count for r in self._files.values() if r.status == STATUS_INDEXED)
        actual = await self._w(store.count, what="counting rows")
        if actual == expected:
            return
        table = await self._w(store.scan, ["path", "file_hash"], what="scanning for orphan rows")
        bad = set()
        for path, digest in zip(table.column("path").to_pylist(), table.column("file_hash").to_pylist()):
            rec = self._files.get(path)
            if rec is None or rec.status != STATUS_INDEXED or rec.file_hash != digest:
                bad.add(path)
        counts: dict[str, int] = {}
        for path in table.column("path").to_pylist():
            counts[path] = counts.get(path, 0) + 1
        for path, rec in self._files.items():
            if rec.status == STATUS_INDEXED and counts.get(path, 0) != rec.chunk_count:
                bad.add(path)
        if bad:
            log.warning("removing rows of %d file(s) that the manifest does not vouch for", len(bad))
            await self._w(store.delete_paths, sorted(bad), what="removing orphan rows")
            await self._w(self._manifest.forget, sorted(bad), what="forgetting files of orphan rows")
            for p in bad:
                self._files.pop(p, None)

    # ------------------------------------------------------------------ stages
    async def _discover(self, read_q: asyncio.Queue, write_q: asyncio.Queue) -> None:
        from ..discovery import discover

        st = self.stats.stage("discover")
        st.busy()
        st.pending = 1
        gen = discover(self.cfg.root, index_dir=self.cfg.index_dir, max_file_size=self.cfg.max_file_size,
                       should_stop=lambda: self.stopping)
        seen: set[str] = set()
        complete = True
        while True:
            batch = await run_in_thread(_take, gen, DISCOVER_BATCH, timeout_s=self.cfg.deadlines.queue,
                                        stage="discover", what="walking the tree")
            st.progress(len(batch))
            if not batch:
                break
            if self.stopping:
                complete = False
                break
            for item in batch:
                seen.add(item.path)
                self.stats.files_seen += 1
                prev = self._files.get(item.path)
                if isinstance(item, SkippedFile):
                    await self._record_skip(item, prev, write_q)
                    continue
                if (prev is not None and prev.size == item.size
                        and prev.mtime_ns == item.mtime_ns and prev.status != STATUS_ERROR):
                    self.stats.files_unchanged += 1
                    if prev.status == STATUS_SKIPPED:
                        self.stats.skipped.append({"path": prev.path, "reason": prev.reason})
                    elif prev.reason:
                        self.stats.notes.append({"path": prev.path, "note": prev.reason})
                    continue
                self.stats.files_to_index += 1
                if prev is None:
                    self._start_lexical()
                self._prefetch_store()
                await self._put(read_q, item, "discover", "read")
        if complete and not self.stopping:
            for path in sorted(set(self._files) - seen):
                prev = self._files[path]
                await self._put(write_q, WriteItem(path, None, delete_old=prev.chunk_count > 0,
                                                   old_chunks=prev.chunk_count), "discover", "write")
        st.pending = 0
        await self._put(read_q, _END, "discover", "read")
        st.done()

    def _start_lexical(self) -> None:
        """Start the fast tier (once) when discovery meets a file the index has never seen.
        Not for a rebuild: the serving generation answers searches until the swap."""
        if self._lexical_started or not self.cfg.lexical_first or self._stage_tg is None or self.rebuild:
            return
        self._lexical_started = True
        self._stage_tg.create_task(self._lexical(), name="lexical")

    async def _lexical(self) -> None:
        """The fast tier: walk the tree again, ahead of the embedder, and add the chunks of
        every file the manifest has never seen to the query tables at once, without vectors
        (``Manifest.add_lexical``), so the text leg and the definitions find them seconds
        into the run. Chunking follows the embedder's budget, so the rows are the ones the
        pipeline will vouch for. A file this pass cannot read or chunk is simply left to the
        pipeline, which records why; the pass's own waits (walk, read, chunk, write) each
        have their deadline, and it stops with the run. While it runs, the pipeline's own
        reading and the LanceDB import hold back (:meth:`_after_fast_tier`)."""
        try:
            await self._lexical_pass()
        finally:
            self._lexical_done.set()

    async def _after_fast_tier(self) -> None:
        """Wait, at most ``LEXICAL_HEAD_START_S``, while the fast tier runs: on 2 cores, the
        pipeline's second chunker, the embedder's threads and the LanceDB import slowed it
        3x (chi, 934 chunks: all searchable at 4.3 s instead of 1.1 s)."""
        if self._lexical_started and not self._lexical_done.is_set():
            try:
                # not wait_for (see the module's docstring): when the fast tier fails, its
                # ``finally`` sets the event just as the group cancels this stage, and
                # wait_for would return the result and swallow the cancel
                async with asyncio.timeout(LEXICAL_HEAD_START_S):
                    await self._lexical_done.wait()
            except TimeoutError:
                pass  # a big tree: both run from here on

    async def _lexical_pass(self) -> None:
        from ..discovery import discover
        from ..embedding.identity import builtin_chunking
        from ..embedding.protocol import is_cheap
        from ..store.query_tables import QueryRows

        # the model's tokenizer alone, when that is known without loading the model (minilm):
        # the pass chunks while the ONNX session loads
        sizing = None
        if self._embedder is None:
            sizing = await run_in_thread(builtin_chunking, self.cfg.embedder, timeout_s=self.cfg.deadlines.model_load,
                                         stage="lexical", what="loading the tokenizer for the fast tier")
        if sizing is None:
            sizing = await self._get_embedder()
            if is_cheap(sizing):
                return  # the pipeline itself is as fast as this pass would be
            count = self._count_tokens
        else:
            count = sizing.count_tokens
        budget = stages.chunk_budget(sizing)
        hard = stages.hard_token_limit(sizing)
        gen = discover(self.cfg.root, index_dir=self.cfg.index_dir, max_file_size=self.cfg.max_file_size,
                       should_stop=lambda: self.stopping)
        pending: list[QueryRows] = []
        size = 0
        last = time.monotonic()

        async def flush() -> None:
            nonlocal pending, size, last
            if not pending:
                return
            rows = QueryRows([c for r in pending for c in r.chunks], [t for r in pending for t in r.texts])
            pending, size, last = [], 0, time.monotonic()
            added = await self._w(self._manifest.add_lexical, rows, what="adding the fast tier's rows")
            if added:
                self.stats.lexical_chunks += added
                if self.stats.lexical_first_s is None:
                    self.stats.lexical_first_s = time.monotonic() - self._t0

        while not self.stopping and not self._stages_done.is_set():
            batch = await run_in_thread(_take, gen, DISCOVER_BATCH, timeout_s=self.cfg.deadlines.queue,
                                        stage="lexical", what="walking the tree for the fast tier")
            if not batch:
                break
            for item in batch:
                if self.stopping or self._stages_done.is_set():
                    break  # the pipeline vouched for everything first: nothing left to speed up
                if isinstance(item, SkippedFile) or item.path in self._files:
                    continue
                work = await self._lexical_chunks(item, count, budget, hard)
                if work is None:
                    continue
                pending.append(QueryRows.lexical(work[0], work[1]))
                self.stats.lexical_files += 1
                size += len(work[0])
                # small first commit: the first search should not wait for a big batch
                if size >= self.cfg.write_batch_chunks or time.monotonic() - last >= LEXICAL_FLUSH_S \
                        or self.stats.lexical_first_s is None:
                    await flush()
        if not self.stopping and not self._stages_done.is_set():
            await flush()
            self.stats.lexical_done_s = time.monotonic() - self._t0

    async def _lexical_chunks(self, entry: FileEntry, count, budget: int, hard: bool):
        """``(chunks, file hash)`` of a new file for the fast tier, or None when this pass
        cannot make them: the pipeline reads and chunks the file again and records the
        reason (timeouts included), so nothing is lost by leaving it out here."""
        outcome = await run_in_thread(_read, entry, None, self.cfg.max_file_size, timeout_s=self.cfg.deadlines.read,
                                      stage="lexical", what="reading a file for the fast tier", path=entry.path)
        if outcome.kind != "text":
            return None
        try:
            result = await run_in_thread(
                _chunk_call, entry.path, outcome.text, count, budget, self.cfg.deadlines.parse, hard,
                timeout_s=self.cfg.deadlines.parse * 2 + 30, stage="lexical", what="chunking for the fast tier",
                path=entry.path)
        except StageTimeoutError:
            return None  # the pipeline's own chunking of this file meets the same deadline and records it
        except Exception as exc:  # noqa: BLE001 - a chunker bug: recorded by the pipeline's chunk stage
            log.debug("fast tier: %s left to the pipeline (%s: %s)", entry.path, type(exc).__name__, exc)
            return None
        return (result.chunks, outcome.file_hash) if result.chunks else None

    async def _record_skip(self, item: SkippedFile, prev: FileRecord | None, write_q: asyncio.Queue) -> None:
        self.stats.skipped.append({"path": item.path, "reason": item.reason})
        if prev and prev.status == STATUS_SKIPPED and prev.reason == item.reason and prev.size == item.size \
                and prev.mtime_ns == item.mtime_ns:
            return
        rec = FileRecord(item.path, item.size, item.mtime_ns, "", 0, STATUS_SKIPPED, item.reason, None, time.time())
        await self._put(write_q, WriteItem(item.path, rec, delete_old=bool(prev and prev.chunk_count),
                                           old_chunks=prev.chunk_count if prev else 0), "discover", "write")

    async def _read_and_chunk(self, read_q: asyncio.Queue, embed_q: asyncio.Queue, write_q: asyncio.Queue) -> None:
        st = self.stats.stage("read")
        cfg = self.cfg
        while True:
            entry = await self._get(read_q, "read", "read")
            if entry is _END:
                break
            if self.stopping:
                continue  # intake has stopped: drop what was not started
            assert isinstance(entry, FileEntry)
            await self._after_fast_tier()
            st.pending = 1
            await self.memory.admit("read")
            prev = self._files.get(entry.path)
            known = prev.file_hash if prev is not None and prev.status == STATUS_INDEXED else None
            outcome = await run_in_thread(_read, entry, known, cfg.max_file_size, timeout_s=self.cfg.deadlines.read,
                                          stage="read", what="reading the file", path=entry.path)
            if outcome.kind == "unchanged":
                self.stats.files_unchanged += 1
                await self._put(write_q, outcome_item(entry.path, outcome, prev), "read", "write")
            elif outcome.kind in (STATUS_SKIPPED, STATUS_ERROR):
                self._note_problem(entry.path, outcome.kind, outcome.reason)
                await self._put(write_q, outcome_item(entry.path, outcome, prev), "read", "write")
            else:
                work = await self._chunk(entry, outcome)
                if work is None:
                    failed = stages.ReadOutcome(STATUS_ERROR, outcome.size, outcome.mtime_ns, outcome.file_hash,
                                                reason=self._last_chunk_error)
                    await self._put(write_q, outcome_item(entry.path, failed, prev), "read", "write")
                else:
                    work.vectors = [None] * len(work.chunks)
                    await self._put(embed_q, outcome_item(entry.path, outcome, prev, work), "read", "embed")
            st.pending = 0
            st.progress()
        await self._put(embed_q, _END, "read", "embed")
        st.done()

    _last_chunk_error = ""

    def _note_problem(self, path: str, kind: str, reason: str | None) -> None:
        self.stats.skipped.append({"path": path, "reason": reason})
        if kind == STATUS_ERROR:
            self.stats.errors.append({"path": path, "reason": reason})

    async def _chunk(self, entry: FileEntry, outcome: stages.ReadOutcome) -> FileWork | None:
        embedder = await self._get_embedder()
        budget = stages.chunk_budget(embedder)
        try:
            hard = stages.hard_token_limit(embedder)
            result = await run_in_thread(
                _chunk_call, entry.path, outcome.text, self._count_tokens, budget, self.cfg.deadlines.parse, hard,
                timeout_s=self.cfg.deadlines.parse * 2 + 30, stage="chunk", what="chunking", path=entry.path)
        except StageTimeoutError as exc:
            reason = f"chunking did not finish within its deadline ({exc.message})"
        except Exception as exc:  # a chunker bug is this file's problem: recorded, shown, --strict fails
            reason = f"chunking failed: {type(exc).__name__}: {exc}"
        else:
            if result.note:
                self.stats.notes.append({"path": entry.path, "note": result.note})
            return FileWork(entry=dataclasses.replace(entry, size=outcome.size, mtime_ns=outcome.mtime_ns),
                            file_hash=outcome.file_hash, language=result.language, chunks=result.chunks,
                            note=result.note)
        log.warning("%s: %s", entry.path, reason)
        self._note_problem(entry.path, STATUS_ERROR, reason)
        self._last_chunk_error = reason
        return None

    async def _embed(self, embed_q: asyncio.Queue, write_q: asyncio.Queue) -> None:
        st = self.stats.stage("embed")
        backoff = Backoff(self.cfg.backoff_base_s, self.cfg.backoff_max_s)
        breaker = CircuitBreaker(self.cfg.breaker_threshold)
        batch: list[tuple[WriteItem, int]] = []

        async def flush() -> None:
            nonlocal batch
            todo, batch = batch, []
            while todo:
                size = self._batch_size() if not self.memory.under_pressure else max(1, self.cfg.batch_size // 4)
                part, todo = todo[:size], todo[size:]
                await self._embed_batch(part, backoff, breaker, write_q)

        while True:
            if batch and embed_q.empty():
                await flush()
            item = await self._get(embed_q, "embed", "embed")
            if item is _END:
                await flush()
                break
            assert isinstance(item, WriteItem) and item.work is not None
            if self.stopping:
                continue  # stopping: finish the files already started, drop the rest
            st.pending += 1
            if not item.work.chunks:
                await self._complete(item, write_q)
                continue
            for idx in range(len(item.work.chunks)):
                batch.append((item, idx))
                if len(batch) >= self._batch_size():
                    await flush()
        await self._put(write_q, _END, "embed", "write")
        st.done()

    def _batch_size(self) -> int:
        """Chunks per embed call: ``--batch-size``, or at least CHEAP_BATCH for an embedder
        that costs less than the per-call overhead (hash, static; known once loaded)."""
        from ..embedding.protocol import is_cheap

        if self._embedder is not None and is_cheap(self._embedder):
            return max(self.cfg.batch_size, CHEAP_BATCH)
        return self.cfg.batch_size

    async def _embed_batch(self, part, backoff, breaker, write_q) -> None:
        st = self.stats.stage("embed")
        embedder = await self._get_embedder()
        await self.memory.admit("embed")
        self._batch_no += 1
        first = part[0][0].work.chunks[part[0][1]]
        files = sorted({it.path for it, _ in part})
        label = (f"batch {self._batch_no} ({len(part)} chunks from {first.path}:{first.start_line}"
                 + (f" and {len(files) - 1} more file(s)" if len(files) > 1 else "") + ")")
        from ..embedding import check_embeddings

        texts = stages.embedding_texts([it.work.chunks[i] for it, i in part])
        dim = embedder.dim

        cache = await self._embed_cache(embedder)
        keys = [cache.key(t) for t in texts] if cache is not None else []
        try:
            cached = await self._w(cache.get_many, keys, what="reading the embedding cache") if cache else {}
        except sqlite3.Error as exc:
            self._disable_cache(exc)
            cache, keys, cached = None, [], {}
        missing = [i for i, k in enumerate(keys) if k not in cached] if cache is not None else list(range(len(texts)))

        async def attempt():
            if not missing:
                return None
            vectors = await run_in_thread(embedder.embed, [texts[i] for i in missing],
                                          timeout_s=self.cfg.deadlines.embed, stage="embed",
                                          what="the embed call", batch=label)
            check_embeddings(vectors, len(missing), dim, self.cfg.embedder)
            return vectors

        def on_retry(n: int, exc: BaseException) -> None:
            self.stats.retries += 1
            log.warning("embed %s failed (attempt %d, retrying): %s: %s", label, n, type(exc).__name__, exc)

        fresh = await call_with_retries(attempt, retries=self.cfg.retries, backoff=backoff, breaker=breaker,
                                        stage="embed", batch=label, on_retry=on_retry)
        if cache is None:
            vectors = fresh
        else:
            vectors = [cached.get(k) for k in keys]
            for j, i in enumerate(missing):
                vectors[i] = fresh[j]
            self.stats.chunks_cached += len(texts) - len(missing)
            try:
                await self._w(cache.put_many, [(keys[i], fresh[j]) for j, i in enumerate(missing)],
                              what="writing the embedding cache")
            except sqlite3.Error as exc:
                self._disable_cache(exc)
        self.stats.chunks_embedded += len(part)
        st.progress(len(part))
        for row, (item, idx) in zip(vectors, part):
            item.work.vectors[idx] = row
            item.work.embedded += 1
            if item.work.embedded == len(item.work.chunks):
                await self._complete(item, write_q)

    async def _embed_cache(self, embedder):
        """The content-addressed cache, opened on first use (None when disabled)."""
        from ..embedding.protocol import is_cheap

        # A cheap embedder (hash, static) computes a vector faster than the cache looks one up.
        if not self.cfg.embed_cache or self._cache_disabled or is_cheap(embedder):
            return None
        if self._cache is None:
            from ..store.embed_cache import EmbedCache

            # Kept across --full on purpose: it is keyed by embedder and text, so it can
            # never serve a stale vector, and it makes a rebuild cheap.
            try:
                self._cache = await self._w(EmbedCache, self.layout.embed_cache, embedder.name, embedder.dim,
                                            what="opening the embedding cache")
            except sqlite3.Error as exc:
                self._disable_cache(exc)
        return self._cache

    def _disable_cache(self, exc: BaseException) -> None:
        """The cache only saves time: when it fails, say so once and embed without it."""
        log.warning("embedding cache disabled for this run (%s: %s); every chunk is embedded",
                    type(exc).__name__, exc)
        self._cache_disabled = True
        # Its connection is closed with the others at the end of the run, on the writer.


    async def _complete(self, item: WriteItem, write_q: asyncio.Queue) -> None:
        complete(item)
        self.stats.stage("embed").pending -= 1
        await self._put(write_q, item, "embed", "write")

    async def _write(self, write_q: asyncio.Queue) -> None:
        st = self.stats.stage("write")
        last = time.monotonic()
        buffered = 0
        while True:
            if self._write_buffer:
                wait = max(0.0, self.cfg.write_interval_s - (time.monotonic() - last))
            else:
                wait = self.cfg.deadlines.queue
            st.waiting()
            try:
                async with asyncio.timeout(wait):
                    item = await write_q.get()
            except TimeoutError:
                if not self._write_buffer:
                    raise StageTimeoutError(f"queue write stayed empty for {wait:g}s", stage="write") from None
                item = None
            finally:
                st.busy()
            if item is _END:
                break
            if item is not None:
                self._write_buffer.append(item)
                st.pending = len(self._write_buffer)
                buffered += item.chunk_count
            if self._write_buffer and (item is None or buffered >= self.cfg.write_batch_chunks
                                       or time.monotonic() - last >= self.cfg.write_interval_s):
                await self._flush_writes()
                buffered = 0
                last = time.monotonic()
        await self._flush_writes()
        st.done()

    async def _flush_writes(self) -> None:
        items, self._write_buffer = self._write_buffer, []
        if not items:
            return
        st = self.stats.stage("write")
        st.pending = len(items)
        # The commit runs as its own future, shielded: if this stage is cancelled (a sibling
        # failed), the commit still completes and _salvage() waits for it.
        fut = asyncio.ensure_future(self._commit(items))
        self._inflight_write = fut
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._writer_failed = True
            raise
        finally:
            st.pending = len(self._write_buffer)
        self._inflight_write = None
        st.progress(len(items))

    async def _commit(self, items: list[WriteItem]) -> None:
        """The write protocol: journal → replace rows → vouch in the manifest."""
        m = self._manifest
        lance_paths = [it.path for it in items if it.delete_old or it.chunk_count]
        if lance_paths:
            await self._w(m.begin_write, lance_paths, what="journalling the paths of a write")
            st = self.stats.stage("write")
            st.waiting()  # opening the store (importing LanceDB) has its own deadline: not a stall
            try:
                store = await self._get_store()
            finally:
                st.busy()
            embedder = self._embedder
            with_rows = [it for it in items if it.chunk_count]
            rows = None
            if with_rows:
                from ..store.schema import build_rows

                rows = build_rows([(it.work.chunks, it.work.file_hash, it.work.vectors) for it in with_rows],
                                  embedder.dim)
                if store.table is None or not self._identity_recorded:
                    # the identity first, then the table: a run killed in between leaves an
                    # identity without a table (the next run creates it), never vectors
                    # nobody can name. Written once per run, which also heals an index whose
                    # table an older version created without it.
                    await self._w(m.set_meta, embedder=embedder.name, dim=str(embedder.dim),
                                  spec=self.cfg.embedder, chunking=stages.CHUNKING_VERSION,
                                  what="recording the embedder")
                    self._identity_recorded = True
                    if store.table is None:
                        await self._w(store.ensure_table, embedder.dim, what="creating the chunk table")
            deletes = [it.path for it in items if it.delete_old]
            backoff = Backoff(self.cfg.backoff_base_s, self.cfg.backoff_max_s)

            async def attempt():
                # Retried only when the attempt has ended (an exception). A deadline
                # abandons the writer instead (WriterAbandonedError is never retried).
                await self._w(store.replace, deletes, rows,
                              what=f"writing chunk rows of {len(items)} file(s) from {items[0].path}")

            def on_retry(n: int, exc: BaseException) -> None:
                self.stats.retries += 1
                log.warning("write failed (attempt %d, retrying): %s", n, exc)

            await call_with_retries(attempt, retries=self.cfg.retries, backoff=backoff,
                                    breaker=CircuitBreaker(self.cfg.retries + 2), stage="write",
                                    batch=f"{len(items)} file(s) from {items[0].path}", on_retry=on_retry)
        records = [it.record for it in items if it.record is not None]
        removed = [it.path for it in items if it.record is None]
        await self._w(_vouch, m, records, removed, lance_paths, rows if lance_paths else None,
                      what="vouching for written files in the manifest")
        for it in items:
            self.stats.chunks_deleted += it.old_chunks if it.delete_old else 0
            if it.record is None:
                self.stats.files_deleted += 1
                self._files.pop(it.path, None)
            else:
                self._files[it.path] = it.record
                if it.work is not None:
                    self.stats.files_indexed += 1
                    self.stats.chunks_written += it.chunk_count

    async def _refresh_search_indexes(self) -> None:
        """Rebuild the full-text and scalar indexes once enough rows are unindexed.

        Rows added since the last build are still searched (a flat pass over just those
        rows), so a small incremental run skips the rebuild; it happens when no index
        exists yet or the unindexed rows pass max(2,000, 10% of the table).
        """
        written = self.stats.chunks_written
        if self._store is None or not (written or self.stats.chunks_deleted):
            return
        m = self._manifest
        meta = await self._w(m.meta, what="reading the manifest meta")
        unindexed = int(meta.get("search_unindexed_rows", "-1"))
        unindexed = written if unindexed < 0 else unindexed + written
        built = meta.get("search_indexes_built") == "1"
        if (built and unindexed < max(2000, self.stats.chunks_total // 10)) or self.stopping:
            # (a stop asked after the pipeline ended: the rebuild, which reads every row, is
            # left to the next run; the unindexed rows are searched meanwhile, only slower)
            await self._w(m.set_meta, search_unindexed_rows=str(unindexed), what="recording unindexed rows")
            return
        from ..search.maintenance import refresh_search_indexes

        try:
            # a rebuild reads every row: its deadline grows with them (1M rows took ~8 min here)
            done = await self.writer.call(refresh_search_indexes, self._store, what="rebuilding the search indexes",
                                          timeout_s=self.cfg.deadlines.write
                                          + self.stats.chunks_total / SEARCH_INDEX_ROWS_PER_S)
            if done.get("fts"):
                await self._w(m.set_meta, search_unindexed_rows="0", search_indexes_built="1",
                              what="recording the search indexes")
        except WriterAbandonedError as exc:
            # The rows are committed; only the index build is late. The lock stays held
            # until it ends (run()), and searches stay correct (unindexed rows are scanned).
            log.warning("%s; searches stay correct (unindexed rows are scanned), only slower", exc.one_line())

    async def _refresh_ann(self) -> None:
        """Keep the vectors' ANN graph (store/ann.py) in step with the committed rows:
        built once the index passes ``ann_min_rows`` vectors, rebuilt when many rows are
        new to it or gone, dropped below. A run that changed nothing only checks that it
        exists and opens."""
        m = self._manifest
        changed = bool(self.stats.chunks_written or self.stats.chunks_deleted)
        if self.stopping:
            # a stop asked after the pipeline ended: a build would outlast the shutdown
            # deadline. Searches stay exact (rows the graph lacks are scored), the next run builds
            if changed:
                self.stats.ann = {"action": "skipped", "reason": "a stop was asked; the next run refreshes it"}
            return
        # A build reads and links every vector: its deadline grows with them (1M rows took
        # 10 min on 2 cores, 1,600 rows/s; ANN_BUILD_ROWS_PER_S is half that).
        try:
            meta = await self._w(m.meta, what="reading the manifest meta")
            dim = int(meta["dim"]) if meta.get("dim", "").isdigit() else None
            call = functools.partial(m.refresh_ann, dim, self.cfg.ann_min_rows, changed=changed,
                                     chunks=self.stats.chunks_total)
            done = await self.writer.call(call, what="refreshing the ANN graph",
                                          timeout_s=self.cfg.deadlines.write
                                          + self.stats.chunks_total / ANN_BUILD_ROWS_PER_S)
        except CodesiftError as exc:
            # Derived data: the rows are committed and searches stay exact without it (they
            # score every vector it does not hold), only slower. The summary says why; the
            # next run tries again.
            log.warning("the ANN graph was not refreshed: %s; searches score every vector it does not hold",
                        exc.one_line())
            self.stats.ann = {"action": "failed", "reason": exc.one_line()}
            return
        if done["action"] != "none":
            self.stats.ann = done
            log.info("ANN graph %s: %d vector(s), %d fresh or gone", done["action"], done["rows"], done["stale"])

    async def _monitor(self, done: asyncio.Event) -> None:
        while not done.is_set():
            try:
                async with asyncio.timeout(MONITOR_INTERVAL_S):
                    await done.wait()
            except TimeoutError:
                pass
            self.memory.sample()
            self.stats.peak_rss = self.memory.peak
            snapshot = self.live_snapshot()
            self._write_live(snapshot)
            if self.on_tick is not None:
                self.on_tick(snapshot)
            now = time.monotonic()
            for st in self.stats.stages.values():
                stalled = st.stalled_for(now)
                if stalled > self.cfg.deadlines.stall:
                    stacks = dump_stacks()
                    log.error("stage %s stalled; stacks of every task and thread follow:\n%s", st.name, stacks)
                    raise StallError(
                        f"no progress for {stalled:.0f}s with work pending (--stall-timeout "
                        f"{self.cfg.deadlines.stall:g}s); stacks dumped to the log",
                        stage=st.name)

    def live_snapshot(self) -> dict:
        s = self.stats
        return {
            "pid": os.getpid(),
            "root": str(self.cfg.root),
            "started_at": s.started,
            "updated_at": time.time(),
            "state": "stopping" if self.stopping else "running",
            "rebuild": self.rebuild,
            "files": {"seen": s.files_seen, "to_index": s.files_to_index, "indexed": s.files_indexed,
                      "unchanged": s.files_unchanged, "deleted": s.files_deleted, "skipped": len(s.skipped)},
            "chunks": {"embedded": s.chunks_embedded, "written": s.chunks_written, "deleted": s.chunks_deleted},
            "retries": s.retries,
            "rss_bytes": self.memory.sample(),
            "memory_limit_bytes": self.memory.limit,
            "queues": {name: q.qsize() for name, q in self._queues.items()},
            "stages": {name: st.as_dict() for name, st in s.stages.items()},
        }

    def _write_live(self, snapshot: dict) -> None:
        try:
            write_json_atomic(self.layout.live_status, snapshot)
        except OSError as exc:
            log.debug("live status not written: %s", exc)  # advisory only; the run goes on

    # ------------------------------------------------------------------ driver
    def _take_signals(self, loop: asyncio.AbstractEventLoop) -> list[tuple[int, object]]:
        """Own SIGINT and SIGTERM for the whole run, store closing included; returns the
        caller's handlers, which :meth:`_hand_back_signals` restores. Plain handlers rather
        than ``loop.add_signal_handler``: asyncio's handler only marks the signal on the
        loop's wakeup pipe, and a signal marked just before the handler's removal was
        dropped unseen by anyone (the loop reads the pipe after the removal)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return []  # not the main thread: the caller owns signals

        def arrived(signum, frame) -> None:
            self._signals_seen += 1
            self._last_signal = signum
            try:
                loop.call_soon_threadsafe(self._on_signal, signum)
            except RuntimeError:  # the loop has closed: the hand-back below passes it on
                pass

        taken = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                taken.append((sig, signal.signal(sig, arrived)))
            except (ValueError, OSError):
                pass
        if taken:
            # A signal delivered to another thread only marks itself for the main thread;
            # the wakeup pipe ends the loop's wait so that the handler runs at once.
            import socket

            ours, theirs = socket.socketpair()
            try:
                ours.setblocking(False)
                theirs.setblocking(False)
                loop.add_reader(theirs.fileno(), _drain, theirs)
            except (NotImplementedError, OSError, ValueError):  # a loop without readers: handlers alone
                ours.close()
                theirs.close()
                return taken
            previous_fd = signal.set_wakeup_fd(ours.fileno(), warn_on_full_buffer=False)
            self._wakeup = (ours, theirs, previous_fd, loop)
        return taken

    _wakeup: tuple | None = None

    def _hand_back_signals(self, taken: list[tuple[int, object]]) -> None:
        for sig, previous in taken:
            try:
                signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            except (ValueError, OSError, TypeError):
                pass
        if self._wakeup is not None:
            ours, theirs, previous_fd, loop = self._wakeup
            self._wakeup = None
            signal.set_wakeup_fd(previous_fd)
            loop.remove_reader(theirs.fileno())
            ours.close()
            theirs.close()
        # a signal that arrived while the store closed, not yet seen by the loop, still
        # reaches the caller that holds the token (the watcher: it must stop)
        if self._signals_seen > self._signals_handled and self._cancel is not None:
            self._cancel.cancel(signal.Signals(self._last_signal).name)

    _identity_recorded = False  # the manifest's embedder meta written by this run
    _signals_seen = 0
    _signals_handled = 0
    _last_signal = signal.SIGINT

    def _on_signal(self, signum: int) -> None:
        self._signals_handled += 1
        if self.stopping:
            # A signal after a stop was asked for (signal or cancel): leave at once. The
            # journal keeps the index consistent.
            os._exit(128 + signum)
        self._request_stop(signum, None)
        if self._cancel is not None:
            # The caller holding the token (the watcher) learns of the signal too: one that
            # lands after the pipeline ended leaves nothing to stop here, and the run returns
            # "ok", but the caller must still stop rather than watch on.
            self._cancel.cancel(signal.Signals(signum).name)

    def _on_cancel(self) -> None:
        """The cancel token fired (any thread): take the SIGINT path on the loop."""
        try:
            self._loop.call_soon_threadsafe(self._request_stop, None, self._cancel.reason)
        except RuntimeError:
            pass  # the loop has closed: the run is over, nothing left to stop

    def _request_stop(self, signum: int | None, reason: str | None) -> None:
        """The one shutdown path (SIGINT, SIGTERM, a cancel token): stop intake, finish the
        files in flight within the shutdown deadline, commit, return ``interrupted``."""
        if self.stopping:
            return
        self._stop_signal = signum
        self._stop_reason = reason or "cancel requested"
        self.stopping = True
        what = signal.Signals(signum).name if signum is not None else f"a cancel ({self._stop_reason})"
        log.warning("received %s: stopping intake, finishing in-flight work (%gs at most)%s", what,
                    self.cfg.deadlines.shutdown, "; send it again to exit at once" if signum is not None else "")
        loop = asyncio.get_running_loop()
        loop.call_later(self.cfg.deadlines.shutdown, self._cancel_for_deadline)

    def _interrupted(self) -> InterruptedRun:
        if self._stop_signal is None and self._stop_reason is not None:
            return InterruptedRun(None, self._stop_reason)
        return InterruptedRun(self._stop_signal or signal.SIGINT)

    def _cancel_for_deadline(self) -> None:
        if self._pipeline_task is not None and not self._pipeline_task.done():
            self._deadline_cancelled = True
            self._pipeline_task.cancel()

    _pipeline_task: asyncio.Task | None = None

    def _middle_context(self) -> MiddleContext:
        return MiddleContext(
            cfg=self.cfg, stats=self.stats, stopping=lambda: self.stopping, get=self._get, put=self._put,
            previous=lambda path: self._files.get(path), embedder=self._get_embedder,
            current_embedder=lambda: self._embedder, note_problem=self._note_problem)

    async def _stages(self) -> None:
        read_q: asyncio.Queue = asyncio.Queue(READ_Q_SIZE)
        write_q: asyncio.Queue = asyncio.Queue(WRITE_Q_SIZE)
        self._write_q = write_q
        done = asyncio.Event()
        self._stages_done = done
        queues, middle = self.middle.stages(self._middle_context(), read_q, write_q, done)
        self._queues = {"read": read_q, **queues, "write": write_q}

        async def writer() -> None:
            try:
                await self._write(write_q)
            finally:
                done.set()

        async with asyncio.TaskGroup() as tg:
            self._stage_tg = tg
            if self.middle.prefetch_store:
                self._tg = tg
            tg.create_task(self._monitor(done), name="monitor")
            tg.create_task(self._discover(read_q, write_q), name="discover")
            for name, coro in middle.items():
                tg.create_task(coro, name=name)
            tg.create_task(writer(), name="write")
        self._tg = None
        self._stage_tg = None

    async def _salvage(self) -> None:
        """After a failure: commit what was complete (in-flight write, buffer, write queue)."""
        if self._writer_failed or self.writer.abandoned is not None:
            return
        inflight = self._inflight_write
        if inflight is not None:
            try:
                async with asyncio.timeout(self.cfg.deadlines.write):
                    await asyncio.shield(inflight)
            except (CodesiftError, TimeoutError, OSError) as exc:
                log.error("the in-flight write failed (%s); the next run will redo it", exc)
                return
        if self._write_q is not None:
            while not self._write_q.empty():
                item = self._write_q.get_nowait()
                if item is not _END:
                    self._write_buffer.append(item)
        items, self._write_buffer = self._write_buffer, []
        if items:
            try:
                async with asyncio.timeout(self.cfg.deadlines.write):
                    await self._commit(items)
            except (CodesiftError, TimeoutError, OSError) as exc:
                log.error("could not commit %d completed file(s) after the failure: %s", len(items), exc)

    async def run(self) -> RunResult:
        self.middle.check()
        try:
            return await self._run()
        finally:
            await self.middle.close()

    async def _run(self) -> RunResult:
        t0 = time.monotonic()
        error: CodesiftError | None = None
        status = "ok"
        try:
            self.layout.ensure()
            lock = WriterLock(self.layout.lock)
            lock.acquire(self.cfg.lock_wait_s)
        except OSError as exc:
            raise StoreError(f"cannot use index directory {self.cfg.index_dir}: {exc.strerror or exc}",
                             stage="store", cause=exc) from exc
        loop = asyncio.get_running_loop()
        result: RunResult | None = None
        self.writer = StoreWriter()
        tracking = self.threads.activate()
        self._loop = loop
        unsubscribe = self._cancel.on_cancel(self._on_cancel) if self._cancel is not None else None
        taken = self._take_signals(loop)
        try:
            await self._plan()
            self._manifest = await self._w(Manifest, self.target.manifest, what="opening the manifest")
            crashed = await self._w(self._manifest.close_crashed_runs, what="closing crashed runs")
            run_id = await self._w(self._manifest.start_run, what="recording the run")
            try:
                await self._reconcile()
                self._files = await self._w(self._manifest.files, what="reading the manifest")
                if crashed or self._store is not None:
                    # The last run died (or rows were just reconciled): check that every
                    # row is vouched for before planning. A clean history skips this, so a
                    # no-change run never opens LanceDB.
                    await self._check_orphans(await self._get_store())
                await self._complete_query_tables()
                await self._clear_lexical()
                self._pipeline_task = asyncio.ensure_future(self._stages())
                try:
                    await self._pipeline_task
                except asyncio.CancelledError:
                    if not self._deadline_cancelled:
                        raise
                if self.stopping:
                    raise self._interrupted()
            except* CodesiftError as group:
                error = _first(group)
            except* Exception as group:  # an unexpected bug still ends the run with one clear line
                exc = _first(group)
                error = StageError(f"{type(exc).__name__}: {exc}", stage="supervisor", cause=exc)
                log.exception("unexpected error", exc_info=exc)
            if error is not None:
                if isinstance(error, InterruptedRun) or self.stopping:
                    error = self._interrupted()
                    status = "interrupted"
                else:
                    status = "failed"
                await self._salvage()
            if self.writer.abandoned is None:
                await self._clear_lexical(at_end=True)
                counts = await self._w(self._manifest.counts, what="counting chunks")
                self.stats.chunks_total = counts["chunks"]
            if error is None:
                # Not after a failure or a signal: the shutdown deadline must hold, and
                # unindexed rows are still searched (flat), only slower.
                await self._refresh_search_indexes()
                await self._refresh_ann()
            if error is None and self.rebuild is not None:
                try:
                    self.gens.swap(self.target)
                    self.rebuild["swapped"] = True
                    log.info("rebuild complete: generation %s now serves", self.target.name)
                except OSError as exc:
                    error = StoreError(f"could not swap in the rebuilt generation {self.target.name}: {exc}; "
                                       "the previous generation keeps serving and the next run retries",
                                       stage="rebuild", cause=exc)
                    status = "failed"
            self.memory.sample()
            self.stats.peak_rss = self.memory.peak
            result = RunResult(status, self.stats, time.monotonic() - t0, error, embedder=self._embedder,
                               rebuild=self.rebuild)
            if error is not None:
                result.exit_code = error.exit_code
            elif self.cfg.strict and (self.stats.errors or self.stats.notes):
                result.exit_code = 3
                result.strict_problems = self.stats.errors + self.stats.notes
            try:
                await self._w(self._manifest.finish_run, run_id, status, result.summary(),
                              what="recording the run summary")
            except StoreError as exc:
                log.error("could not record the run summary: %s", exc.one_line())
            return result
        finally:
            if unsubscribe is not None:
                unsubscribe()
            try:
                self.layout.live_status.unlink(missing_ok=True)
            except OSError:
                pass
            try:
                live = await self._close_store(lock, tracking)
            finally:
                self._hand_back_signals(taken)
            if result is not None:
                result.live_threads = live
                result.lock_released = not live

    async def _close_store(self, lock: WriterLock, tracking) -> list[str]:
        """Close every store connection on the writer, stop it, and release the lock when
        no codesift thread of this run can still run; return the threads still running."""
        for conn, what in ((self._manifest, "closing the manifest"), (self._cache, "closing the embedding cache")):
            if conn is not None and self.writer.abandoned is None:
                try:
                    await self._w(conn.close, what=what)
                except CodesiftError as exc:
                    log.error("%s", exc.one_line())
        self.threads.deactivate(tracking)
        grace = min(self.cfg.deadlines.shutdown, CLOSE_GRACE_S)
        self.writer.close(grace)
        live = self.threads.wait(grace)
        if self.writer.alive:
            live.insert(0, f"codesift-writer: {self.writer.busy_with() or self.writer.abandoned or 'store call'}")
        if not live:
            lock.release()
            return []
        log.error("%d codesift thread(s) still running after the run (%s); the writer lock stays held until "
                  "they end", len(live), "; ".join(live))
        writer = self.writer
        self.threads.when_all_done(lock.release, until=lambda: not writer.alive)
        return live

def _copy_next(m: Manifest, batches, vouched: dict[str, str]) -> int | None:
    """The next batch of a chunk-table scan into the query tables (None: the scan is done)."""
    batch = next(batches, None)
    return None if batch is None else m.copy_query_rows(batch, vouched)


def _vouch(m: Manifest, records, removed, replaced, rows) -> None:
    """The manifest's commit of a write: the file records and the query tables' rows,
    built here (on the writer) from the Arrow rows the chunk table just took."""
    from ..store.query_tables import QueryRows

    m.commit_files(records, removed, replaced=replaced,
                   rows=QueryRows.from_arrow(rows) if rows is not None else None)


def _init_generation(gen: GenerationLayout, meta: dict) -> None:
    m = Manifest(gen.manifest)
    try:
        m.set_meta(**meta)
    finally:
        m.close()


def _peek(gen: GenerationLayout) -> tuple[dict, bool]:
    """A generation's manifest meta, and whether it holds anything (files, journal or rows)."""
    m = Manifest(gen.manifest)
    try:
        meta = m.meta()
        counts = m.counts()
        busy = bool(m.pending_paths())
    finally:
        m.close()
    files = counts.get(STATUS_INDEXED, 0) + counts.get(STATUS_SKIPPED, 0) + counts.get(STATUS_ERROR, 0)
    rows = gen.lancedb.is_dir() and any(gen.lancedb.iterdir())
    return meta, bool(files or busy or rows)


def _same_embedder(meta: dict, ident: tuple[str, int]) -> bool:
    have = meta.get("embedder")
    return have == ident[0] and int(meta.get("dim", ident[1])) == ident[1]


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first leaf of a (nested) exception group: the error that started the failure."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _take(gen, n: int) -> list:
    out = []
    for item in gen:
        out.append(item)
        if len(out) >= n:
            break
    return out


def _read(entry: FileEntry, known: str | None, max_file_size: int) -> stages.ReadOutcome:
    return stages.read_file(entry, known_hash=known, max_file_size=max_file_size)


def _drain(sock) -> None:
    """Empty the signal wakeup pipe (its bytes only woke the loop; the handler does the work)."""
    try:
        while sock.recv(512):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _chunk_call(path, text, count_tokens, budget, parse_timeout_s, hard_limit):
    return stages.chunk_file(path, text, count_tokens=count_tokens, max_tokens=budget,
                             parse_timeout_s=parse_timeout_s, hard_limit=hard_limit)


def run_index(cfg: IndexConfig, *, on_tick: Callable[[dict], None] | None = None, embedder=None,
              cancel: CancelToken | None = None) -> RunResult:
    """Run one index over ``cfg.root`` and return its result.

    A failed run is a result with ``error`` set; only refusals before the run starts (the
    lock is held, the index directory is unusable, another embedder without ``--full``,
    no disk for a rebuild) raise CodesiftError. ``embedder`` lets a long-lived caller
    reuse a loaded model (it must match ``cfg.embedder``). ``cancel`` stops the run the
    way SIGINT does. When the result returns, no thread of the run is still working,
    unless ``result.live_threads`` names it (a hung embed call cannot be stopped); the
    writer lock is then released only when it ends (``result.lock_released`` is False).
    """
    return asyncio.run(IndexRun(cfg, on_tick=on_tick, embedder=embedder, cancel=cancel).run())


class LocalMiddle:
    """The local engine's middle stages: read+chunk and embed as asyncio tasks of the
    driver, joined by a bounded embed queue. They share the driver's embedder, memory
    guard and embedding cache (all on the local machine), so this strategy is bound to
    its driver; any other strategy gets only a :class:`~.middle.MiddleContext`."""

    prefetch_store = True

    def __init__(self, run: IndexRun) -> None:
        self._run = run

    def check(self) -> None:
        return None

    def driver_embedder(self, spec: str):
        return None  # loaded on the driver, where it embeds

    def stages(self, ctx: MiddleContext, read_q: asyncio.Queue, write_q: asyncio.Queue, done: asyncio.Event):
        embed_q: asyncio.Queue = asyncio.Queue(EMBED_Q_SIZE)
        return {"embed": embed_q}, {"read": self._run._read_and_chunk(read_q, embed_q, write_q),
                                    "embed": self._run._embed(embed_q, write_q)}

    async def close(self) -> None:
        return None
