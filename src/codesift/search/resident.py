"""A resident search process per index, so a CLI search skips the cold start.

A cold ``codesift search`` spends most of its half second loading: numpy, the vectors and
the model's ONNX session. An agent that searches thirty times through the CLI pays that
thirty times. So the first CLI search of an index also starts, detached, a resident
process (``python -m codesift.search.resident``) that loads once and answers later CLI
searches of that index over a Unix socket; the CLI process then only parses arguments
and prints.

The rules it keeps:

* **The CLI never depends on it.** Connecting has a deadline of :data:`CONNECT_S`, the
  answer one of :data:`REPLY_S`; no socket, a refused connection, a timeout, a garbled or
  oversized reply, or a server of another codesift build all mean "search in-process",
  and the CLI's output is the same either way (a search error the server reports is the
  search's own error, raised as in-process).
* **It does not outlive its use.** It exits after :data:`IDLE_S` without a request, when
  its socket file is removed or replaced, or when its index directory is gone. At most one
  runs per index (an exclusive ``flock``); a second start exits at once.
* **It answers from the index as it is now.** A commit (the manifest's stat changes)
  opens a new searcher, keeping the loaded model (as the MCP server does).
* **Only its user can reach it.** The socket lives in a ``0700`` directory owned by the
  user (``$TMPDIR/codesift-<uid>``), checked before every use.

``CODESIFT_RESIDENT=off`` (or ``codesift search --no-server``) searches in-process and
starts nothing.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import CodesiftError

log = logging.getLogger("codesift.search")

ENV = "CODESIFT_RESIDENT"  # "off": never ask or start a resident process
CONNECT_S = 0.5
REPLY_S = 30.0
READ_S = 5.0  # a connected client must send its whole request within this
WARMUP_S = 300.0  # loading the model and the vectors (the model-load deadline)
IDLE_S = 600.0
MAX_MESSAGE = 64 << 20
PROTOCOL = 1


# ---------------------------------------------------------------------- where

def _runtime_dir() -> Path:
    """``$TMPDIR/codesift-<uid>`` (``/tmp/codesift-<uid>`` when that would make a socket
    path longer than AF_UNIX allows): created 0700; refused unless ours and private."""
    d = Path(tempfile.gettempdir()) / f"codesift-{os.getuid()}"
    if len(str(d)) > 60:
        d = Path("/tmp") / f"codesift-{os.getuid()}"
    try:
        d.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(errno.EPERM, f"{d} is not a private directory of this user")
    return d


def socket_path(root: Path, index_dir: Path) -> Path:
    key = f"{os.path.realpath(root)}\0{os.path.realpath(index_dir)}".encode()
    return _runtime_dir() / f"search-{hashlib.sha256(key).hexdigest()[:24]}.sock"


# The environment a search depends on (backend and ANN switches, model caches, remote
# embedders' settings): a process started under other values is not asked.
_ENV_PREFIXES = ("CODESIFT_", "OPENAI_", "OLLAMA_")
_ENV_NAMES = ("XDG_CACHE_HOME", "HOME", "HF_HOME")


def build_stamp() -> str:
    """Which codesift answers, and under what: its version, its source files' sizes and
    times, and the environment a search depends on (a process started by another build or
    under other settings is not asked)."""
    import codesift

    pkg = Path(codesift.__file__).parent
    h = hashlib.sha256(getattr(codesift, "__version__", "?").encode())
    for name in sorted(os.environ):
        if (name.startswith(_ENV_PREFIXES) and not name.startswith(ENV)) or name in _ENV_NAMES:
            h.update(f"{name}={os.environ[name]}\0".encode())
    for p in sorted(pkg.rglob("*.py")):
        try:
            st = p.stat()
        except OSError:
            continue
        h.update(f"{p.relative_to(pkg)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:24]


def server_pid(root: Path, index_dir: Path) -> int | None:
    """The pid of the resident process serving this index, or None when none holds the lock."""
    import fcntl

    try:
        with open(socket_path(root, index_dir).with_suffix(".lock")) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                text = f.read().strip()
                return int(text) if text.isdigit() else None
            fcntl.flock(f, fcntl.LOCK_UN)
            return None
    except OSError:
        return None


def enabled() -> bool:
    return os.environ.get(ENV, "").lower() not in ("off", "0", "false", "no")


# ---------------------------------------------------------------------- wire

def _send(sock: socket.socket, obj: dict) -> None:
    sock.sendall(json.dumps(obj).encode() + b"\n")


def _receive(sock: socket.socket, within_s: float) -> dict:
    """One JSON line (at most MAX_MESSAGE bytes) arriving whole within ``within_s``;
    ValueError when it is not one, TimeoutError past the deadline."""
    parts, size = [], 0
    deadline = time.monotonic() + within_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no whole message within {within_s:.0f} s")
        sock.settimeout(left)
        block = sock.recv(1 << 16)
        if not block:
            raise ValueError("the connection closed before a whole message")
        nl = block.find(b"\n")
        if nl >= 0:
            parts.append(block[:nl])
            break
        parts.append(block)
        size += len(block)
        if size > MAX_MESSAGE:
            raise ValueError("message too large")
    msg = json.loads(b"".join(parts))
    if not isinstance(msg, dict):
        raise ValueError("not a JSON object")
    return msg


# ---------------------------------------------------------------------- client

class Unreachable(Exception):
    """No usable resident process: the caller searches in-process."""


def ask(root: Path, index_dir: Path, request: dict) -> dict:
    """The resident process's answer to ``request`` (``{"op": "search"|"similar", ...}``):
    ``{"ok": true, ...}`` or ``{"ok": false, "error": {...}}``. :class:`Unreachable` when
    there is none to ask, or it does not answer within the deadlines."""
    try:
        path = socket_path(root, index_dir)
    except OSError as exc:
        raise Unreachable(str(exc)) from exc
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_S)
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise Unreachable(f"no resident process ({exc.strerror or exc})") from exc
        sock.settimeout(REPLY_S)
        try:
            _send(sock, {"protocol": PROTOCOL, "stamp": build_stamp(), **request})
            reply = _receive(sock, REPLY_S)
        except (OSError, ValueError) as exc:
            raise Unreachable(f"the resident process did not answer ({exc})") from exc
    finally:
        sock.close()
    if reply.get("ok") not in (True, False) or reply.get("protocol") != PROTOCOL:
        raise Unreachable(f"the resident process answered {reply.get('reason') or 'something else'}")
    return reply


class ReportedError(CodesiftError):
    """A search error the resident process reported: its one-line text and exit code, as
    the in-process search would have printed them."""

    def __init__(self, line: str, exit_code: int, *, stage: str | None = None) -> None:
        super().__init__(line, stage=stage)
        self.line = line
        self.exit_code = exit_code

    def one_line(self) -> str:
        return self.line


def raise_error(reply: dict) -> None:
    err = reply.get("error") if isinstance(reply.get("error"), dict) else {}
    code = err.get("exit_code")
    raise ReportedError(str(err.get("line") or "the resident search process failed"),
                        code if isinstance(code, int) and not isinstance(code, bool) and 0 < code < 128 else 1,
                        stage=err.get("stage") if isinstance(err.get("stage"), str) else None)


def replay_warnings(reply: dict) -> None:
    """The warnings the search logged in the resident process, logged here (where the
    user sees them)."""
    for text in reply.get("warnings") or []:
        if isinstance(text, str):
            log.warning("%s", text)


def start(root: Path, index_dir: Path) -> None:
    """Start a resident process for this index in the background (it exits at once if one
    runs). Never waits for it; a failure to start is logged, the search goes on."""
    try:
        path = socket_path(root, index_dir)
        logp = path.with_suffix(".log")
        logf = open(logp, "wb" if logp.exists() and logp.stat().st_size > (1 << 20) else "ab")
    except OSError as exc:
        log.info("no resident search process: %s", exc)
        return
    try:
        subprocess.Popen([sys.executable, "-m", "codesift.search.resident", "--root", str(root),
                          "--index-dir", str(index_dir)],
                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
                         close_fds=True, cwd="/")
    except OSError as exc:
        log.info("could not start a resident search process: %s", exc)
    finally:
        logf.close()


# ---------------------------------------------------------------------- server

class _Collect(logging.Handler):
    """The warnings a request logs, returned with its answer."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class _Server:
    def __init__(self, root: Path, index_dir: Path, idle_s: float) -> None:
        self.root, self.index_dir, self.idle_s = Path(root), Path(index_dir), idle_s
        self.stamp = build_stamp()
        self.searcher = None
        self.key: tuple | None = None
        self.embedders: dict[str, object] = {}
        self.busy_since: float | None = None
        self.busy_limit = 2 * REPLY_S

    def _watchdog(self) -> None:
        """A request its client gave up on long ago (a hung model call) ends the process:
        nothing else would, and the CLI searches in-process meanwhile."""
        while True:
            time.sleep(1.0)
            since = self.busy_since
            if since is not None and time.monotonic() - since > self.busy_limit:
                log.error("a search has run for %.0f s: the resident process exits", time.monotonic() - since)
                os._exit(3)

    def _searcher(self):
        """The searcher over the index as it is now; the model kept across commits."""
        from .engine import index_key, remember_embedder, reopen_searcher

        key = index_key(self.index_dir)
        if self.searcher is None or key != self.key:
            if self.searcher is not None:
                remember_embedder(self.searcher, self.embedders)
            self.searcher, self.key = reopen_searcher(self.root, self.index_dir, self.embedders), key
        return self.searcher

    def answer(self, req: dict) -> dict:
        if req.get("protocol") != PROTOCOL or not isinstance(req.get("stamp"), str):
            return {"ok": None, "protocol": PROTOCOL, "reason": "a malformed request"}
        if req["stamp"] != self.stamp:
            # a client of another build or settings: it searches in-process and starts one of its own
            return {"ok": None, "protocol": PROTOCOL, "reason": "another codesift build or settings", "exit": True}
        caught = _Collect()
        logging.getLogger("codesift").addHandler(caught)
        try:
            out = self._run(req)
        except CodesiftError as exc:
            out = {"ok": False, "error": {"line": exc.one_line(), "stage": exc.stage, "exit_code": exc.exit_code}}
        except (KeyError, TypeError, ValueError) as exc:
            out = {"ok": None, "reason": f"a malformed request ({type(exc).__name__}: {exc})"}
        except Exception as exc:  # noqa: BLE001 - reported: the client searches in-process, where it shows
            log.exception("a search failed in the resident process")
            out = {"ok": None, "reason": f"an internal error ({type(exc).__name__}: {exc})"}
        finally:
            logging.getLogger("codesift").removeHandler(caught)
        return {"protocol": PROTOCOL, "warnings": caught.lines, **out}

    def _run(self, req: dict) -> dict:
        s = self._searcher()
        filters = {"lang": list(req.get("lang") or []), "path": list(req.get("path") or [])}
        k = int(req.get("k", 10))
        if req.get("op") == "search":
            s.disabled_signals = frozenset(req.get("no_signal") or [])
            try:
                hits = s.search_many([str(q) for q in req["queries"]], k=k, mode=str(req.get("mode", "hybrid")),
                                     **filters)
            finally:
                s.disabled_signals = frozenset()
            return {"ok": True, "hits": [[h.as_dict() for h in hs] for hs in hits], "coverage": s.coverage()}
        if req.get("op") == "similar":
            hits = s.similar(str(req["path_arg"]), int(req["line"]), k=k, **filters)
            return {"ok": True, "hits": [[h.as_dict() for h in hits]]}
        raise ValueError(f"unknown op {req.get('op')!r}")

    def serve(self) -> int:
        import fcntl

        path = socket_path(self.root, self.index_dir)
        lock = open(path.with_suffix(".lock"), "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return 0  # another one serves (or is starting): nothing to do
        try:
            lock.truncate(0)
            lock.write(f"{os.getpid()}\n")  # who serves (read by `server_pid`)
            lock.flush()
            import threading

            threading.Thread(target=self._watchdog, name="resident-watchdog", daemon=True).start()
            self.busy_since, self.busy_limit = time.monotonic(), WARMUP_S
            self._searcher().embedder()  # warm before the first client: the model, then the tables
            self.searcher.backend()
            self.busy_since, self.busy_limit = None, 2 * REPLY_S
            try:
                path.unlink()  # a dead predecessor's
            except FileNotFoundError:
                pass
            # bound and listening under a private name, then renamed into place: a client that
            # sees the socket can connect at once (no refusal between bind and listen)
            # (a short name: AF_UNIX paths are limited to 107 bytes)
            staging = path.with_name(f"new-{os.getpid()}.sock")
            staging.unlink(missing_ok=True)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                srv.bind(str(staging))
                os.chmod(staging, 0o600)
                srv.listen(16)
                os.replace(staging, path)
            except BaseException:
                srv.close()
                staging.unlink(missing_ok=True)
                raise
            ident = os.stat(path).st_ino
            srv.settimeout(1.0)
            last = time.monotonic()
            while True:
                try:
                    conn, _ = srv.accept()
                except socket.timeout:
                    if time.monotonic() - last > self.idle_s or not self._still_wanted(path, ident):
                        break
                    continue
                last = time.monotonic()
                if self._handle(conn):
                    break
            srv.close()
            if self._still_wanted(path, ident):
                path.unlink(missing_ok=True)
            return 0
        finally:
            lock.close()

    def _still_wanted(self, path: Path, ident: int) -> bool:
        try:
            return os.stat(path).st_ino == ident and self.index_dir.is_dir()
        except OSError:
            return False

    def _handle(self, conn: socket.socket) -> bool:
        """Answer one request; True when the server should exit (a client of another build)."""
        with conn:
            try:
                req = _receive(conn, READ_S)
            except (OSError, ValueError) as exc:
                log.warning("a bad request was dropped: %s", exc)
                return False
            conn.settimeout(REPLY_S)
            self.busy_since = time.monotonic()
            try:
                reply = self.answer(req)
            finally:
                self.busy_since = None
            try:
                _send(conn, reply)
            except OSError as exc:
                log.warning("a reply was not delivered: %s", exc)
            return bool(reply.get("exit"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m codesift.search.resident")
    ap.add_argument("--root", required=True)
    ap.add_argument("--index-dir", required=True)
    ap.add_argument("--idle", type=float, default=float(os.environ.get("CODESIFT_RESIDENT_IDLE_S", IDLE_S)))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s resident %(process)d: %(message)s")
    from ..errors import CodesiftError

    try:
        return _Server(Path(args.root), Path(args.index_dir), args.idle).serve()
    except (CodesiftError, OSError) as exc:
        log.error("resident search process ends: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
