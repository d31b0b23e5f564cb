"""The Ray engine: the same stages, with read+chunk and embed run on a Ray cluster.

``codesift index --engine ray [--ray-address ADDR] [--workers N] [--gpus-per-worker G]``

Only the middle of the local pipeline changes. Discovery, the manifest diff, the
writer, the journal protocol and the live status run on the driver exactly as in the
local engine: :class:`~.supervisor.IndexRun` drives both, with :class:`RayMiddle` as
its middle-stages strategy (:mod:`.middle`)::

    discover ──read_q──▶ [Ray Data: read+chunk tasks ─▶ embed actor pool] ──write_q──▶ write
                 (driver)            (cluster)                      (driver)

* Files to index are collected from ``read_q`` and become one Ray Dataset (one row per
  file). ``map_batches`` runs :func:`read_chunk_batch` as tasks (``stages.read_file`` +
  ``stages.chunk_file``), then :class:`EmbedWorker`, a callable class in an actor pool
  that loads the configured embedder once per actor (``num_gpus=--gpus-per-worker``).
* A file stays one row from read to embed, so all its chunks arrive together; the
  driver turns each output row into the very ``WriteItem`` the local engine makes and
  hands it to the unchanged writer. The manifest is updated only after a commit, so a
  killed driver resumes like the local engine, and the rows are the same.
* Failures: an embed call is retried inside the actor with the local engine's backoff,
  retry count, per-call deadline and circuit breaker; when retries are exhausted the
  actor returns the failure as data and the driver fails the run with one line naming
  the stage, the batch and the cause. A crashed actor process is restarted by Ray
  (``max_restarts``/``max_task_retries`` = ``--retries``). Every driver-side wait is
  bounded: Ray start-up, each ``next()`` on the output iterator (run on a daemon thread
  per batch), shutdown, and the whole job (``--job-timeout``).

Ray is an optional extra (``pip install 'codesift[ray]'``); this module imports it
lazily, so ``codesift`` without Ray only fails when ``--engine ray`` is asked for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import pickle
import sys
import threading
import time
import warnings

from ..errors import ConfigError, StageError, StageTimeoutError
from ..models import FileEntry, FileWork
from ..store.manifest import STATUS_ERROR, STATUS_INDEXED, STATUS_SKIPPED
from . import stages
from .retry import Backoff, CircuitBreaker
from .items import outcome_item
from .middle import END as _END
from .middle import MiddleContext
from .threads import run_in_thread

log = logging.getLogger("codesift.pipeline.ray")

RAY_EXTRA_HINT = "pip install 'codesift[ray]'"
RAY_START_TIMEOUT_S = 180.0  # ray import + ray.init (+ joining a cluster)
RAY_SHUTDOWN_TIMEOUT_S = 30.0
READ_BATCH_FILES = 16  # files per read+chunk task (and per input block)
EMBED_BATCH_FILES = 16  # files per embed actor call (split into --batch-size embed calls)

# Output row kinds besides the ReadOutcome kinds (text, unchanged, skipped, error).
KIND_CHUNK_ERROR = "chunk_error"
KIND_EMBED_FAILED = "embed_failed"


# ====================================================================== worker side
# Everything below up to the driver section runs inside Ray worker processes. It is
# module-level, so Ray ships it by reference (codesift must be installed on workers).

_WORKER_EMBEDDERS: dict[str, tuple[object, int]] = {}  # spec -> (count_tokens, budget), per process


def _quiet_stdout() -> None:
    """Worker prints must not reach the driver's stdout (it carries ``--json``)."""
    if sys.stdout is not sys.stderr:
        sys.stdout = sys.stderr


def _with_deadline(fn, args: tuple, timeout_s: float, what: str):
    """``fn(*args)`` on a daemon thread; StageTimeoutError after ``timeout_s``."""
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # handed back to the caller below
            box["exc"] = exc

    t = threading.Thread(target=target, name="codesift-ray-call", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise StageTimeoutError(f"{what} did not finish within {timeout_s:g}s")
    if "exc" in box:
        raise box["exc"]
    return box["result"]


def _chunk_tools(spec: str) -> tuple[object, int, bool]:
    """Token counter, chunk budget and hard-limit flag of the embedder, once per worker process."""
    tools = _WORKER_EMBEDDERS.get(spec)
    if tools is None:
        from ..embedding import count_tokens_for, load_embedder

        emb = load_embedder(spec, threads=1)  # only its tokenizer is used here
        tools = (count_tokens_for(emb), stages.chunk_budget(emb), stages.hard_token_limit(emb))
        _WORKER_EMBEDDERS[spec] = tools
    return tools


def read_chunk_batch(batch, *, spec: str, max_file_size: int, parse_timeout_s: float):
    """Ray task body: read and chunk a batch of files (one row per file in and out)."""
    import pyarrow as pa

    _quiet_stdout()
    count_tokens, budget, hard = _chunk_tools(spec)
    cols = {name: batch.column(name).to_pylist() for name in ("path", "abspath", "size", "mtime_ns", "known")}
    paths, payloads = [], []
    for path, abspath, size, mtime_ns, known in zip(*cols.values()):
        entry = FileEntry(path, abspath, size, mtime_ns)
        outcome = stages.read_file(entry, known_hash=known or None, max_file_size=max_file_size)
        out = {"kind": outcome.kind, "size": outcome.size, "mtime_ns": outcome.mtime_ns,
               "file_hash": outcome.file_hash, "reason": outcome.reason}
        if outcome.kind == "text":
            try:
                result = _chunk_with_deadline(path, outcome.text, count_tokens, budget, parse_timeout_s, hard)
            except StageTimeoutError as exc:
                out.update(kind=KIND_CHUNK_ERROR,
                           reason=f"chunking did not finish within its deadline ({exc.message})")
            except Exception as exc:  # a chunker bug is this file's problem, as in the local engine
                out.update(kind=KIND_CHUNK_ERROR, reason=f"chunking failed: {type(exc).__name__}: {exc}")
            else:
                out.update(language=result.language, chunks=result.chunks, note=result.note)
        paths.append(path)
        payloads.append(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    return pa.table({"path": pa.array(paths, pa.string()), "payload": pa.array(payloads, pa.binary())})


def _chunk_with_deadline(path, text, count_tokens, budget, parse_timeout_s, hard_limit):
    def call():
        return stages.chunk_file(path, text, count_tokens=count_tokens, max_tokens=budget,
                                 parse_timeout_s=parse_timeout_s, hard_limit=hard_limit)

    return _with_deadline(call, (), parse_timeout_s * 2 + 30, "chunking")


class EmbedWorker:
    """Ray actor body (callable class): loads the embedder once, embeds whole files.

    Each call gets a batch of file rows; the chunks of the text files are embedded in
    calls of ``batch_size`` texts with the local engine's retry policy. On a permanent
    failure the remaining files come back as ``embed_failed`` rows (the files completed
    before it come back whole), and the driver fails the run.
    """

    def __init__(self, opts: dict) -> None:
        _quiet_stdout()
        from ..embedding import load_embedder

        self.opts = opts
        self.embedder = load_embedder(opts["spec"], threads=opts["threads"])
        self.backoff = Backoff(opts["backoff_base_s"], opts["backoff_max_s"])
        self.breaker = CircuitBreaker(opts["breaker_threshold"])
        self.batch_no = 0
        self.worker = f"{os.uname().nodename}:{os.getpid()}"

    def __call__(self, batch):
        import numpy as np
        import pyarrow as pa

        from ..embedding import check_embeddings

        paths = batch.column("path").to_pylist()
        files = [pickle.loads(p) for p in batch.column("payload").to_pylist()]
        work = [(i, c) for i, f in enumerate(files) if f["kind"] == "text" for c in range(len(f["chunks"]))]
        for f in files:
            if f["kind"] == "text":
                f["vectors"] = [None] * len(f["chunks"])
        retries, retry_log = 0, []
        failed_from: int | None = None  # index of the first file that is not complete
        failure = None
        size = self.opts["batch_size"]
        dim = self.embedder.dim
        for start in range(0, len(work), size):
            part = work[start:start + size]
            self.batch_no += 1
            fi, ci = part[0]
            first = files[fi]["chunks"][ci]
            n_files = len({i for i, _ in part})
            label = (f"batch {self.batch_no} ({len(part)} chunks from {first.path}:{first.start_line}"
                     + (f" and {n_files - 1} more file(s)" if n_files > 1 else "") + f", worker {self.worker})")
            texts = stages.embedding_texts([files[i]["chunks"][c] for i, c in part])
            attempt = 0
            while True:
                try:
                    vectors = _with_deadline(self.embedder.embed, (texts,), self.opts["embed_timeout_s"],
                                             "the embed call")
                    check_embeddings(vectors, len(texts), dim, self.opts["spec"])
                except Exception as exc:  # counted, retried or returned as the failure below
                    self.breaker.failure()
                    if self.breaker.open:
                        failure = (f"circuit breaker opened after {self.breaker.consecutive} consecutive failures",
                                   label, exc)
                    elif attempt >= self.opts["retries"]:
                        failure = (f"failed after {attempt + 1} attempt{'s' if attempt else ''}", label, exc)
                    if failure is not None:
                        break
                    retries += 1
                    retry_log.append(f"embed {label} failed (attempt {attempt + 1}, retrying): "
                                     f"{type(exc).__name__}: {exc}")
                    time.sleep(self.backoff.delay(attempt))
                    attempt += 1
                else:
                    self.breaker.success()
                    break
            if failure is not None:
                failed_from = fi
                break
            for (i, c), row in zip(part, vectors):
                files[i]["vectors"][c] = row
        out = []
        for i, f in enumerate(files):
            if failed_from is not None and i >= failed_from and f["kind"] == "text" and f["chunks"]:
                message, label, exc = failure
                f = {"kind": KIND_EMBED_FAILED, "message": message, "batch": label,
                     "cause": _portable_exception(exc)}
            elif f["kind"] == "text":
                f["vectors"] = np.asarray(f["vectors"], dtype=np.float32).reshape(-1, dim)
            out.append(pickle.dumps(f, protocol=pickle.HIGHEST_PROTOCOL))
        meta = [pickle.dumps({"retries": retries, "retry_log": retry_log, "embedder": self.embedder.name,
                              "dim": dim})] + [b""] * (len(files) - 1)
        return pa.table({"path": pa.array(paths, pa.string()), "payload": pa.array(out, pa.binary()),
                         "meta": pa.array(meta, pa.binary())})


def _portable_exception(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (so the driver names its real type), else a stand-in."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


# ====================================================================== driver side
def ray_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def _missing_ray(exc: BaseException | None = None) -> ConfigError:
    detail = f" ({exc})" if exc is not None else ""
    return ConfigError(f"--engine ray needs Ray, which is not installed{detail}; install the extra: "
                       f"{RAY_EXTRA_HINT}", stage="ray", cause=exc)


@dataclasses.dataclass(frozen=True)
class _Identity:
    """(name, dim) of a built-in embedder: all the driver needs, without loading a model."""

    name: str
    dim: int


class _RayHost:
    """A thread that owns the Ray session for the whole run.

    ``ray.init`` of a local cluster starts raylet and GCS with a parent-death signal,
    which fires when the *thread* that started them exits. So Ray is started, kept and
    shut down by this one long-lived daemon thread, never by a short-lived one.
    """

    def __init__(self, init) -> None:
        self._init = init
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.stopped = threading.Event()
        self.result = None
        self.error: BaseException | None = None
        self.started = False  # ray.init returned: ray.shutdown is owed
        self.thread = threading.Thread(target=self._main, name="codesift-ray", daemon=True)

    def _main(self) -> None:
        try:
            self.result = self._init()
            self.started = True
        except BaseException as exc:  # handed to the awaiting side
            self.error = exc
        finally:
            self.ready.set()
        if self.started:
            # Held for the whole run on purpose: this daemon thread owns the Ray session,
            # and RayMiddle.close sets ``stop`` after the run (a finally), bounded there.
            self.stop.wait()
            try:
                import ray

                ray.shutdown()
            except Exception as exc:  # the run's result stands
                log.warning("Ray did not shut down cleanly: %s", exc)
        self.stopped.set()

    def wait_ready(self, timeout_s: float = RAY_START_TIMEOUT_S):
        if not self.ready.wait(timeout_s):
            raise TimeoutError(f"Ray did not start within {timeout_s:g}s")
        if self.error is not None:
            raise self.error
        return self.result


class RayMiddle:
    """``codesift index --engine ray``: the middle stages (read → chunk → embed) on Ray,
    a strategy of the one run driver (:class:`~.supervisor.IndexRun`)."""

    prefetch_store = False  # the chunk table opens at the first write, after the Ray job started

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self._ray: _RayHost | None = None
        self._job_deadline: float | None = None

    # ------------------------------------------------------------------ set-up / tear-down
    def check(self) -> None:
        if not ray_available():
            raise _missing_ray()

    def driver_embedder(self, spec: str):
        """The driver only needs the embedder's identity (name, dim) for the table: a
        built-in model is loaded on the workers only. ``python:`` specs load on the
        driver, as in the local engine (their identity is only known by loading them)."""
        from ..embedding.identity import builtin_identity

        ident = builtin_identity(spec)
        return _Identity(*ident) if ident is not None else None

    def stages(self, ctx: MiddleContext, read_q: asyncio.Queue, write_q: asyncio.Queue, done: asyncio.Event):
        self._job_deadline = time.monotonic() + self.cfg.deadlines.job
        return {}, {"job-deadline": self._job_watchdog(done), "ray": self._ray_stage(ctx, read_q, write_q)}

    async def close(self) -> None:
        await self._shutdown_ray()

    def _ray_init(self) -> dict:
        """Import Ray and start (or join) it; blocking, run on a daemon thread."""
        try:
            import ray
            import ray.data
        except ImportError as exc:
            raise _missing_ray(exc) from exc
        verbose = logging.getLogger("codesift").getEffectiveLevel() <= logging.INFO
        level = logging.INFO if verbose else logging.ERROR
        kwargs: dict = dict(include_dashboard=False, logging_level=level, configure_logging=False,
                            log_to_driver=True, namespace="codesift")
        if self.cfg.ray_address:
            kwargs["address"] = self.cfg.ray_address
        else:
            from ..embedding.minilm import available_cpus

            # Local workers inherit this process's environment (PYTHONPATH included, so
            # python: embedders import there too); no runtime_env keeps the workers Ray
            # pre-starts usable, which saves seconds per run.
            kwargs.update(address="local", num_cpus=available_cpus())
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(level)
        t0 = time.monotonic()
        ray.init(**kwargs)
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(level)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        if hasattr(ctx, "print_on_execution_start"):
            ctx.print_on_execution_start = False
        ctx.max_errored_blocks = 0
        resources = ray.cluster_resources()
        log.info("Ray %s in %.1fs: %s", "joined" if self.cfg.ray_address else "started",
                 time.monotonic() - t0, {k: v for k, v in resources.items() if k in ("CPU", "GPU")})
        return resources

    async def _shutdown_ray(self) -> None:
        host, self._ray = self._ray, None
        if host is None:
            return
        host.stop.set()
        try:
            await run_in_thread(host.stopped.wait, timeout_s=RAY_SHUTDOWN_TIMEOUT_S, stage="ray",
                                what="shutting Ray down")
        except StageTimeoutError as exc:  # the run's result stands; a stuck shutdown only costs a warning
            log.warning("Ray did not shut down cleanly: %s", exc.message)

    # ------------------------------------------------------------------ stages
    def _remaining(self) -> float:
        return max(0.0, self._job_deadline - time.monotonic()) if self._job_deadline else math.inf

    async def _job_watchdog(self, done: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(self.cfg.deadlines.job):
                await done.wait()
        except TimeoutError:
            raise StageTimeoutError(f"the job did not finish within {self.cfg.deadlines.job:g}s (--job-timeout)",
                                    stage="ray") from None

    async def _ray_stage(self, ctx: MiddleContext, read_q: asyncio.Queue, write_q: asyncio.Queue) -> None:
        cfg = self.cfg
        read_st, embed_st = ctx.stats.stage("read"), ctx.stats.stage("embed")
        entries: dict[str, tuple[FileEntry, int]] = {}  # path -> (entry, old chunk count)
        rows: list[dict] = []
        start: asyncio.Future | None = None
        try:
            while True:
                entry = await ctx.get(read_q, "read", "read")
                if entry is _END:
                    break
                if ctx.stopping():
                    continue
                assert isinstance(entry, FileEntry)
                if start is None:  # start Ray while discovery goes on; a no-op run never starts it
                    self._ray = _RayHost(self._ray_init)
                    self._ray.thread.start()
                    start = asyncio.ensure_future(run_in_thread(
                        self._ray.wait_ready, timeout_s=min(RAY_START_TIMEOUT_S, self._remaining()), stage="ray",
                        what="starting Ray" if not cfg.ray_address else f"joining Ray at {cfg.ray_address}"))
                prev = ctx.previous(entry.path)
                known = prev.file_hash if prev is not None and prev.status == STATUS_INDEXED else ""
                entries[entry.path] = (entry, prev.chunk_count if prev else 0)
                rows.append({"path": entry.path, "abspath": entry.abspath, "size": entry.size,
                             "mtime_ns": entry.mtime_ns, "known": known or ""})
            if rows and not ctx.stopping():
                # The table needs the embedder's identity; for python: specs this loads
                # it (as the local engine does), for built-ins it is known without a model.
                await ctx.embedder()
                embed_st.busy()
                read_st.busy()
                resources = await start
                await self._run_dataset(ctx, rows, entries, resources, write_q)
            read_st.done()
            embed_st.done()
        finally:
            if start is not None and not start.done():
                start.cancel()
        await ctx.put(write_q, _END, "embed", "write")

    def _build_dataset(self, rows: list[dict], resources: dict):
        import ray
        import ray.data

        cfg = self.cfg
        cpus = max(1, int(resources.get("CPU", 1)))
        workers = cfg.workers or max(1, cpus // 2)
        threads = cfg.threads or max(1, cpus // workers)
        opts = {"spec": cfg.embedder, "threads": threads, "batch_size": cfg.batch_size, "retries": cfg.retries,
                "embed_timeout_s": cfg.deadlines.embed, "backoff_base_s": cfg.backoff_base_s,
                "backoff_max_s": cfg.backoff_max_s, "breaker_threshold": cfg.breaker_threshold}
        ds = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / READ_BATCH_FILES)))
        ds = ds.map_batches(read_chunk_batch, batch_size=READ_BATCH_FILES, batch_format="pyarrow",
                            fn_kwargs={"spec": cfg.embedder, "max_file_size": cfg.max_file_size,
                                       "parse_timeout_s": cfg.deadlines.parse}, num_cpus=1)
        extra = {}
        if cfg.gpus_per_worker:
            extra["num_gpus"] = cfg.gpus_per_worker
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ray_remote_args (max_restarts...) are "deprecated" in 2.60
            ds = ds.map_batches(EmbedWorker, fn_constructor_args=(opts,), batch_size=EMBED_BATCH_FILES,
                                batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=workers),
                                num_cpus=1, max_restarts=cfg.retries, max_task_retries=cfg.retries, **extra)
        log.info("Ray job: %d file(s), %d embed worker(s) x %d thread(s)%s", len(rows), workers, threads,
                 f", {cfg.gpus_per_worker:g} GPU(s) each" if cfg.gpus_per_worker else "")
        return ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1)

    async def _run_dataset(self, ctx: MiddleContext, rows, entries, resources, write_q: asyncio.Queue) -> None:
        cfg = self.cfg
        read_st, embed_st = ctx.stats.stage("read"), ctx.stats.stage("embed")
        batches = iter(await run_in_thread(self._build_dataset, rows, resources,
                                           timeout_s=min(cfg.deadlines.queue, self._remaining()),
                                           stage="ray", what="planning the Ray job"))
        read_st.pending = embed_st.pending = len(rows)
        first = True
        while not ctx.stopping():
            # The first batch includes actor start-up and the model load on every worker.
            wait = cfg.deadlines.queue + (cfg.deadlines.model_load if first else 0.0)
            try:
                batch = await run_in_thread(next, batches, None, timeout_s=min(wait, self._remaining()),
                                            stage="embed", what="waiting for the next Ray batch")
            except StageError:
                raise
            except Exception as exc:
                raise _ray_failure(exc) from exc
            if batch is None:
                break
            first = False
            await self._take_batch(ctx, batch, entries, write_q)
        read_st.pending = embed_st.pending = 0

    async def _take_batch(self, ctx: MiddleContext, batch, entries, write_q: asyncio.Queue) -> None:
        stats = ctx.stats
        read_st, embed_st = stats.stage("read"), stats.stage("embed")
        failure = None
        for path, payload, meta in zip(batch.column("path").to_pylist(), batch.column("payload").to_pylist(),
                                       batch.column("meta").to_pylist()):
            if meta:
                m = pickle.loads(meta)
                stats.retries += m["retries"]
                for line in m["retry_log"]:
                    log.warning("%s", line)
                emb = ctx.current_embedder()
                if (m["embedder"], m["dim"]) != (emb.name, emb.dim):
                    raise StageError(f"the workers' embedder is {m['embedder']} (dim {m['dim']}) but the driver "
                                     f"expects {emb.name} (dim {emb.dim}); is the same codesift installed on "
                                     f"every node?", stage="embed")
            f = pickle.loads(payload)
            entry, _old = entries[path]
            read_st.pending -= 1
            embed_st.pending -= 1
            read_st.progress()
            kind = f["kind"]
            if kind == KIND_EMBED_FAILED:
                failure = failure or f
                continue
            prev = ctx.previous(path)
            if kind == "unchanged":
                stats.files_unchanged += 1
                outcome = stages.ReadOutcome(kind, f["size"], f["mtime_ns"], f["file_hash"])
                item = outcome_item(path, outcome, prev)
            elif kind in (STATUS_SKIPPED, STATUS_ERROR, KIND_CHUNK_ERROR):
                if kind == KIND_CHUNK_ERROR:
                    log.warning("%s: %s", path, f["reason"])
                    kind = STATUS_ERROR
                ctx.note_problem(path, kind, f["reason"])
                outcome = stages.ReadOutcome(kind, f["size"], f["mtime_ns"], f["file_hash"], reason=f["reason"])
                item = outcome_item(path, outcome, prev)
            else:
                chunks = f["chunks"]
                if f["note"]:
                    stats.notes.append({"path": path, "note": f["note"]})
                work = FileWork(entry=dataclasses.replace(entry, size=f["size"], mtime_ns=f["mtime_ns"]),
                                       file_hash=f["file_hash"], language=f["language"], chunks=chunks,
                                       note=f["note"], vectors=f["vectors"], embedded=len(chunks))
                outcome = stages.ReadOutcome("text", f["size"], f["mtime_ns"], f["file_hash"])
                item = outcome_item(path, outcome, prev, work)
                stats.chunks_embedded += len(chunks)
                embed_st.progress(len(chunks))
            await ctx.put(write_q, item, "embed", "write")
        if failure is not None:  # complete files of this batch are queued (and salvaged) first
            raise StageError(failure["message"], stage="embed", batch=failure["batch"], cause=failure["cause"])


def _ray_failure(exc: BaseException) -> StageError:
    """One line for an error raised by Ray itself (a task or actor that died, a UDF bug)."""
    cause = exc
    for _ in range(8):  # RayTaskError(UserCodeException) -> ... -> the original exception
        inner = getattr(cause, "cause", None) or cause.__cause__
        if inner is None or inner is cause:
            break
        cause = inner
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    stage = "embed" if "EmbedWorker" in str(exc) else "read" if "read_chunk_batch" in str(exc) else "ray"
    return StageError(f"the Ray job failed: {type(cause).__name__}: {text}", stage=stage, cause=None)
