"""The watch loop: file events → debounced, filtered batches → incremental index runs.

* Events come from ``watchfiles`` (inotify on Linux; ``WATCHFILES_FORCE_POLLING=1`` for
  network file systems). A batch is yielded once no new event arrived for ``debounce_ms``
  (or at most :data:`MAX_BATCH_MS` after the first event of a burst).
* :class:`ChangeFilter` drops events under the index directory and ``.git`` and paths the
  discovery rules ignore (``.gitignore``, ``.git/info/exclude``, ``.codesiftignore``), so
  a build writing into an ignored directory triggers nothing. A change to an ignore file
  itself always triggers a cycle.
* A cycle is one ordinary incremental :func:`~codesift.pipeline.supervisor.run_index`:
  the same pipeline, the same ignore rules, the manifest decides what changed. Changes
  that arrive while a cycle runs are kept by the watcher and make the next batch.
* A failing cycle (embedder error, index locked, disk full...) is logged on stderr and
  retried with backoff (1 s, 2 s, ... 60 s) even if nothing else changes; the watch goes on.
* Stopping: :meth:`Watcher.stop` (or SIGINT/SIGTERM when run on the main thread) ends the
  loop within ~``STOP_POLL_MS``; a cycle in progress on the main thread is interrupted
  the way ``codesift index`` is (what was complete is committed).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

log = logging.getLogger("codesift.watch")

MAX_BATCH_MS = 2000
STOP_POLL_MS = 200
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


def index_embedder_spec(index_dir: Path) -> str | None:
    """The embedder spec the index was built with (manifest), else config.json, else None."""
    import sqlite3

    manifest = Path(index_dir) / "manifest.sqlite"
    if manifest.is_file():
        try:
            db = sqlite3.connect(f"file:{manifest}?mode=ro", uri=True, timeout=5.0)
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'spec'").fetchone()
            finally:
                db.close()
            if row and row[0]:
                return row[0]
        except sqlite3.Error:
            pass
    try:
        return json.loads((Path(index_dir) / "config.json").read_text()).get("embedder")
    except (OSError, ValueError, AttributeError):
        return None


class ChangeFilter:
    """``watch_filter`` for watchfiles: True for a path whose change matters to the index."""

    def __init__(self, root: Path, index_dir: Path) -> None:
        self.root = os.path.realpath(os.fspath(root))
        self.prefix = self.root.rstrip(os.sep) + os.sep
        self.index_dir = os.path.realpath(os.fspath(index_dir))
        self._rules: dict[str, object] = {}  # dir prefix ("" or "a/b/") -> Rules; cleared per batch

    def reset(self) -> None:
        self._rules.clear()

    def __call__(self, change, path: str) -> bool:
        try:
            return self.matters(path)
        except Exception:  # noqa: BLE001 - a filter bug must not kill the watch: let the pipeline decide
            log.debug("filter failed on %s", path, exc_info=True)
            return True

    def matters(self, path: str) -> bool:
        from ..discovery.ignore import CODESIFTIGNORE, GITIGNORE

        if path == self.index_dir or path.startswith(self.index_dir + os.sep):
            return False
        if not path.startswith(self.prefix):
            return False
        rel = path[len(self.prefix):].replace(os.sep, "/")
        parts = rel.split("/")
        if ".git" in parts:
            return rel == ".git/info/exclude"
        if parts[-1] in (GITIGNORE, CODESIFTIGNORE):
            self.reset()
            return True
        return not self.ignored(rel, parts, os.path.isdir(path))

    def _rules_for(self, prefix: str, parent):
        rules = self._rules.get(prefix)
        if rules is None:
            from ..discovery.ignore import CODESIFTIGNORE, GITIGNORE, Rules, read_ignore_file

            if parent is None:  # the root: .git/info/exclude below the root's own files
                parent = Rules()
                exclude = read_ignore_file(os.path.join(self.root, ".git", "info", "exclude"))
                if exclude is not None:
                    parent = parent.child("", exclude, None)
            d = os.path.join(self.root, prefix)
            rules = parent.child(prefix, read_ignore_file(os.path.join(d, GITIGNORE)),
                                 read_ignore_file(os.path.join(d, CODESIFTIGNORE)))
            self._rules[prefix] = rules
        return rules

    def ignored(self, rel: str, parts: list[str], is_dir: bool) -> bool:
        """The walk's verdict for ``rel``, replayed along its ancestors (see discovery.walk)."""
        from ..discovery.ignore import could_reinclude, decide

        rules = self._rules_for("", None)
        ignored = False
        prefix = ""
        for name in parts[:-1]:
            d = prefix + name
            if rules.layers:
                verdict = decide(rules.layers, d + "/", name + "/", True)
                if verdict is not None:
                    ignored = verdict
            if ignored and not (rules.neg_segments and could_reinclude(rules.neg_segments, d)):
                return True
            prefix = d + "/"
            rules = self._rules_for(prefix, rules)
        name = parts[-1]
        if not rules.layers:
            return ignored
        verdict = decide(rules.layers, rel + "/", name + "/", True) if is_dir else decide(rules.layers, rel, name,
                                                                                            False)
        return ignored if verdict is None else verdict


class Watcher:
    """Watch ``root`` and keep the index at ``index_dir`` up to date."""

    def __init__(self, root: Path, index_dir: Path, *, embedder: str | None = None, debounce_ms: int = 100,
                 max_file_size: int | None = None, threads: int = 0, initial: bool = True,
                 stop_event: threading.Event | None = None) -> None:
        if debounce_ms < 1:
            from ..errors import ConfigError

            raise ConfigError("--debounce must be >= 1 ms")
        self.root = Path(os.path.realpath(os.fspath(root)))
        self.index_dir = Path(index_dir)
        self.embedder_option = embedder
        self.debounce_ms = int(debounce_ms)
        self.max_file_size = max_file_size
        self.threads = threads
        self.initial = initial
        # A CancelToken is an Event: stopping the watcher also cancels a cycle in flight,
        # through the run's SIGINT path (a plain Event from a caller only stops the loop).
        from ..pipeline.cancel import CancelToken

        self.stop_event = stop_event if stop_event is not None else CancelToken()
        self.filter = ChangeFilter(self.root, self.index_dir)
        self.cycles = 0
        self.failures = 0
        self.last_cycle: dict | None = None
        self.running_since: float | None = None
        self.interrupted = False
        self._embedder = None
        self._embedder_spec: str | None = None
        self._retry_at: float | None = None
        self._retry_delay = RETRY_FIRST_S
        self._thread: threading.Thread | None = None

    # -- state ----------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"active": not self.stop_event.is_set(), "root": str(self.root), "cycles": self.cycles,
                "failures": self.failures, "cycle_running": self.running_since is not None,
                "last_cycle": self.last_cycle,
                "retry_in_s": (round(max(0.0, self._retry_at - time.monotonic()), 1)
                               if self._retry_at is not None else None)}

    def stop(self) -> None:
        self.stop_event.set()

    # -- one cycle ------------------------------------------------------------------------
    def spec(self) -> str:
        return self.embedder_option or index_embedder_spec(self.index_dir) or "minilm"

    def _config(self):
        from ..config import DEFAULT_MAX_FILE_SIZE, IndexConfig

        return IndexConfig(root=self.root, index_dir=self.index_dir, embedder=self.spec(),
                           max_file_size=self.max_file_size or DEFAULT_MAX_FILE_SIZE, threads=self.threads,
                           lock_wait_s=None)

    def _run_index(self, cfg):
        """One incremental run, reusing the embedder an earlier cycle loaded (the model
        loads once, under the pipeline's load deadline, on the first cycle)."""
        from ..pipeline.supervisor import run_index

        if self._embedder_spec != cfg.embedder:
            self._embedder, self._embedder_spec = None, cfg.embedder
        from ..pipeline.cancel import CancelToken

        token = self.stop_event if isinstance(self.stop_event, CancelToken) else None
        result = run_index(cfg, embedder=self._embedder, cancel=token)
        if result.embedder is not None:
            self._embedder = result.embedder
        return result

    def cycle(self, changed: list[str]) -> bool:
        """One incremental index run; True when it succeeded. Never raises for a failure."""
        from ..errors import CodesiftError

        t0 = time.monotonic()
        self.running_since = time.time()
        what = _describe_changes(changed)
        error = None
        summary = None
        try:
            result = self._run_index(self._config())
            summary = result.summary()
            if result.status == "interrupted":
                self.interrupted = True
                self.stop_event.set()
            elif result.error is not None:
                error = result.error.one_line()
        except CodesiftError as exc:
            error = exc.one_line()
        except Exception as exc:  # noqa: BLE001 - report, keep watching
            log.debug("watch cycle crashed", exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.running_since = None
        dt = time.monotonic() - t0
        self.cycles += 1
        self.last_cycle = {"finished_at": time.time(), "duration_s": round(dt, 3), "ok": error is None,
                           "error": error, "changed": changed[:20], "changed_total": len(changed),
                           "files": summary["files"] if summary else None}
        if self.interrupted:
            _say(f"watch: cycle interrupted after {dt:.2f}s; what was complete is committed")
            return False
        if error is not None:
            self.failures += 1
            self._retry_at = time.monotonic() + self._retry_delay
            _say(f"watch: cycle failed after {dt:.2f}s{what}: {error}; still watching, retrying in "
                 f"{self._retry_delay:g}s")
            self._retry_delay = min(RETRY_MAX_S, self._retry_delay * 2)
            return False
        self._retry_at = None
        self._retry_delay = RETRY_FIRST_S
        f = summary["files"]
        skipped = len(f.get("skipped") or [])
        if f["indexed"] or f["deleted"] or changed:
            _say(f"watch: {f['indexed']} file(s) indexed, {f['deleted']} deleted, {f['unchanged']} unchanged"
                 + (f", {skipped} skipped" if skipped else "") + f" in {dt:.2f}s{what}")
        return True

    # -- the loop -------------------------------------------------------------------------
    def run(self, *, handle_signals: bool = False) -> int:
        """Watch until stopped. ``handle_signals``: SIGINT/SIGTERM stop the loop (main thread
        only). Returns 0 after a stop (also by signal)."""
        import watchfiles

        if handle_signals:
            self._install_signals()
        _say(f"watch: watching {self.root} (index {self.index_dir}, embedder {self.spec()}, debounce "
             f"{self.debounce_ms} ms); Ctrl-C to stop")
        pending: set[str] = set()
        # the initial cycle runs on the watch's first yield: by then the watch is set up, so
        # a file saved after the cycle's walk passed it (and before watching began) is not lost
        initial = self.initial
        try:
            for changes in watchfiles.watch(
                self.root, watch_filter=self.filter, debounce=max(MAX_BATCH_MS, self.debounce_ms),
                step=self.debounce_ms, stop_event=self.stop_event, rust_timeout=STOP_POLL_MS,
                yield_on_timeout=True, raise_interrupt=False, recursive=True,
            ):
                if self.stop_event.is_set():
                    break
                self.filter.reset()
                for _, path in changes:
                    pending.add(os.path.relpath(path, self.root).replace(os.sep, "/"))
                retry_due = self._retry_at is not None and time.monotonic() >= self._retry_at
                if not pending and not retry_due and not initial:
                    continue
                initial = False
                batch, pending = sorted(pending), set()
                self.cycle(batch)
                if handle_signals:
                    self._install_signals()
                if self.stop_event.is_set():
                    break
        except KeyboardInterrupt:  # a signal in the gap before our handler was back
            self.stop_event.set()
        _say("watch: stopped")
        return 0

    def _install_signals(self) -> None:
        def on_signal(signum, frame):
            if self.stop_event.is_set():
                os._exit(128 + signum)  # second signal: leave at once
            self.stop_event.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)

    # -- in the background (mcp --watch) ---------------------------------------------------
    def start_thread(self) -> threading.Thread:
        def target() -> None:
            try:
                self.run(handle_signals=False)
            except Exception as exc:  # noqa: BLE001
                log.error("the watch stopped: %s: %s", type(exc).__name__, exc)
                self.stop_event.set()

        self._thread = threading.Thread(target=target, name="codesift-watch", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout_s: float) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


def _describe_changes(changed: list[str]) -> str:
    if not changed:
        return ""
    head = ", ".join(changed[:3])
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    return f" (changed: {head}{more})"


def _say(text: str) -> None:
    import sys

    try:
        print(f"codesift: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
