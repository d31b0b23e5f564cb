"""The stdio transport: JSON-RPC 2.0, one message per line, standard library only.

It needs no SDK, so ``initialize`` is answered ~0.15 s after the process starts (importing
the ``mcp`` SDK alone takes ~0.6 s). Conformance rules it keeps:

* No input crashes it: one bad message gets one error reply and the loop goes on. An id
  must be a string or an integer; anything else (null, a list, an object, a float) is
  -32600 with ``id: null``.
* Reads are buffered, and a line longer than :data:`MAX_MESSAGE_BYTES` is skipped with a
  -32600 that says so (its id is recovered from the line's first or last bytes when it
  can be).
* Batches are accepted under 2025-03-26 (the one version that requires them) and refused
  under the others; ``logging/setLevel`` and ``tools/list`` cursors are validated.
* ``notifications/cancelled`` reaches the running call (:class:`~.service.Call`); the
  work stops at its next check and no reply is sent.
* On stdin EOF, SIGTERM or SIGINT the server stops its index jobs through the pipeline's
  shutdown path (bounded) before it exits: no orphans.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Callable

from .schemas import (
    BATCH_VERSIONS, INSTRUCTIONS, LATEST_VERSION, LOG_LEVELS, PROTOCOL_VERSIONS, SERVER_NAME, TOOL_NAMES, TOOLS,
)
from .errors import ToolError
from .service import Call, CodesiftService, error_result, run_tool

log = logging.getLogger("codesift.mcp")

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
READ_BUFFER = 1 << 16
WRITE_LOCK_S = 30.0
MAX_PENDING_CALLS = 32  # tool calls in flight (running or queued for a slot); more are refused as busy
_ID_HEAD = re.compile(rb'^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*("(?:[^"\\]|\\.){0,200}"|-?\d{1,18})\s*,')
_ID_TAIL = re.compile(rb',\s*"id"\s*:\s*("(?:[^"\\]|\\.){0,200}"|-?\d{1,18})\s*\}\s*$')
DRAIN_S = 10.0        # at EOF: how long calls in flight may take to answer
SIGNAL_DRAIN_S = 1.0  # after a signal: the same, shorter


class _Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT to leave the read loop."""


def _encode(message) -> bytes:
    return json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def valid_id(rid: Any) -> bool:
    return isinstance(rid, str) or (isinstance(rid, int) and not isinstance(rid, bool))


def _key(rid) -> tuple:
    return (type(rid).__name__, rid)  # 1 and "1" are different requests


def _error(rid, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _result(rid, result: dict) -> dict:
    return {"jsonrpc": "2.0", "id": rid, "result": result}


class _Batch:
    """Collects the replies of one batch and sends them as one array once all are in."""

    def __init__(self, server: StdioServer, n: int) -> None:
        self.server = server
        self.left = n
        self.replies: list[dict] = []
        self.lock = threading.Lock()

    def reply(self, message: dict | None) -> None:
        with self.lock:
            if message is not None:
                self.replies.append(message)
            self.left -= 1
            done = self.left == 0
        if done and self.replies:
            self.server.send(self.replies)


class StdioServer:
    """The protocol loop over binary ``rfile`` / ``wfile``; tool calls run on threads."""

    def __init__(self, service: CodesiftService, rfile, wfile, *, version: str = "0",
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.service = service
        self.rfile = rfile
        self.wfile = wfile
        self.version = version
        self.max_message_bytes = max_message_bytes
        self.protocol_version: str | None = None
        self.log_level = "info"
        self._write_lock = threading.Lock()
        self._calls: dict[tuple, Call] = {}
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._hurry = threading.Event()

    # -- output ---------------------------------------------------------------------------
    def send(self, message) -> None:
        try:
            data = _encode(message)
        except (TypeError, ValueError) as exc:  # a result that is not JSON: the request still gets an answer
            log.error("reply not serializable: %s", exc)
            rid = message.get("id") if isinstance(message, dict) else None
            data = _encode(_error(rid, INTERNAL_ERROR, f"internal error: the reply could not be encoded ({exc})"))
        # A client that stops reading blocks the writer holding this lock: the others give up.
        if not self._write_lock.acquire(timeout=WRITE_LOCK_S):
            log.warning("reply dropped: stdout has been blocked for %gs (the client is not reading)", WRITE_LOCK_S)
            return
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            log.info("reply not delivered (the client has gone): %s", exc)
        finally:
            self._write_lock.release()

    def _send_one(self, message: dict | None) -> None:
        if message is not None:
            self.send(message)

    # -- input ----------------------------------------------------------------------------
    def read_line(self) -> bytes | None:
        """The next line (without the newline), ``b""`` for an oversized one that was skipped,
        None at EOF."""
        line = self.rfile.readline(self.max_message_bytes + 1)
        if not line:
            return None
        if len(line) <= self.max_message_bytes or line.endswith(b"\n"):
            return line
        head, tail, size = line[:4096], line[-4096:], len(line)
        while True:
            more = self.rfile.readline(1 << 20)
            if not more:
                break
            size += len(more)
            tail = (tail + more)[-4096:]
            if more.endswith(b"\n"):
                break
        m = _ID_HEAD.match(head) or _ID_TAIL.search(tail)
        rid = None
        if m:
            try:
                rid = json.loads(m.group(1))
            except ValueError:
                rid = None  # not a valid JSON string after all: answer with id null
        self.send(_error(rid, INVALID_REQUEST, f"message of {size} bytes exceeds the "
                                               f"{self.max_message_bytes // (1024 * 1024)} MiB limit; it was skipped"))
        return b""

    def serve(self) -> None:
        """Read until EOF (the caller then drains the calls in flight)."""
        while True:
            line = self.read_line()
            if line is None:
                break
            line = line.strip()
            if line:
                self.process(line)

    def process(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError) as exc:
            self.send(_error(None, PARSE_ERROR, f"parse error: {type(exc).__name__}: {str(exc)[:200]}"))
            return
        if isinstance(msg, list):
            if not msg:
                self.send(_error(None, INVALID_REQUEST, "an empty batch"))
            elif self.protocol_version not in BATCH_VERSIONS:
                self.send(_error(None, INVALID_REQUEST, f"batches are accepted only under protocol version "
                                                        f"{', '.join(BATCH_VERSIONS)} (this session: "
                                                        f"{self.protocol_version or 'not initialized'})"))
            else:
                batch = _Batch(self, len(msg))
                for item in msg:
                    self.handle(item, batch.reply, in_batch=True)
            return
        self.handle(msg, self._send_one)

    # -- dispatch -------------------------------------------------------------------------
    def handle(self, msg: Any, reply: Callable[[dict | None], None], *, in_batch: bool = False) -> None:
        """Answer one message through ``reply``, which is called exactly once (None: no reply)."""
        if not isinstance(msg, dict):
            reply(_error(None, INVALID_REQUEST, "a JSON-RPC message must be an object"))
            return
        has_id = "id" in msg
        rid = msg.get("id")
        ok_id = has_id and valid_id(rid)
        if msg.get("jsonrpc") != "2.0":
            reply(_error(rid if ok_id else None, INVALID_REQUEST, 'not a JSON-RPC 2.0 message ("jsonrpc": "2.0")'))
            return
        method = msg.get("method")
        if method is None:
            if "result" in msg or "error" in msg:
                reply(None)  # a response, but this server sends no requests: nothing to match
            else:
                reply(_error(rid if ok_id else None, INVALID_REQUEST, "a request needs a method"))
            return
        if has_id and not ok_id:
            reply(_error(None, INVALID_REQUEST, f"id must be a string or an integer, got "
                                                f"{'null' if rid is None else type(rid).__name__}"))
            return
        if not isinstance(method, str):
            reply(_error(rid if ok_id else None, INVALID_REQUEST, "method must be a string") if has_id else None)
            return
        params = msg.get("params", {})
        if not has_id:
            self._notification(method, params)
            reply(None)
            return
        if params is None:
            params = {}
        if not isinstance(params, dict):
            reply(_error(rid, INVALID_PARAMS, "params must be an object"))
            return
        if method == "initialize":
            if in_batch:
                reply(_error(rid, INVALID_REQUEST, "initialize must not be part of a batch"))
            else:
                reply(_result(rid, self._initialize(params)))
        elif method == "ping":
            reply(_result(rid, {}))
        elif method == "tools/list":
            if params.get("cursor") is not None:
                reply(_error(rid, INVALID_PARAMS, f"invalid cursor {str(params['cursor'])[:100]!r}: "
                                                  "every tool is on the first page (no nextCursor was given)"))
            else:
                reply(_result(rid, {"tools": TOOLS}))
        elif method == "tools/call":
            self._tools_call(rid, params, reply)
        elif method == "logging/setLevel":
            level = params.get("level")
            if level not in LOG_LEVELS:
                reply(_error(rid, INVALID_PARAMS, f"unknown log level {str(level)[:50]!r}; one of "
                                                  f"{', '.join(LOG_LEVELS)}"))
            else:
                self.log_level = level
                reply(_result(rid, {}))
        elif method in ("resources/list", "resources/templates/list", "prompts/list"):
            reply(_error(rid, METHOD_NOT_FOUND, f"{method}: this server offers tools only"))
        else:
            reply(_error(rid, METHOD_NOT_FOUND, f"method not found: {method[:100]}"))

    def _notification(self, method: str, params: Any) -> None:
        if method == "notifications/cancelled" and isinstance(params, dict):
            rid = params.get("requestId")
            if not valid_id(rid):
                log.info("ignored a cancellation with an invalid requestId")
                return
            with self._lock:
                call = self._calls.get(_key(rid))
            if call is not None:
                call.cancel(f"cancelled by the client ({str(params.get('reason') or 'no reason given')[:200]})")

    def _initialize(self, params: dict) -> dict:
        asked = params.get("protocolVersion")
        self.protocol_version = asked if asked in PROTOCOL_VERSIONS else LATEST_VERSION
        return {"protocolVersion": self.protocol_version,
                "capabilities": {"tools": {"listChanged": False}, "logging": {}},
                "serverInfo": {"name": SERVER_NAME, "title": "codesift code search", "version": self.version},
                "instructions": INSTRUCTIONS}

    def _tools_call(self, rid, params: dict, reply) -> None:
        name = params.get("name")
        if not isinstance(name, str) or name not in TOOL_NAMES:
            reply(_error(rid, INVALID_PARAMS, f"unknown tool {str(name)[:100]!r}; tools: "
                                              f"{', '.join(sorted(TOOL_NAMES))}"))
            return
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            reply(_error(rid, INVALID_PARAMS, "arguments must be an object"))
            return
        key = _key(rid)
        call = Call(self.service.tool_timeout_s)
        with self._lock:
            if key in self._calls:
                reply(_error(rid, INVALID_REQUEST, f"id {rid!r} is already in use by a call in flight"))
                return
            if len(self._calls) >= MAX_PENDING_CALLS:
                reply(_result(rid, error_result(ToolError("busy", f"{len(self._calls)} calls are already in "
                                                                  f"flight"))))
                return
            self._calls[key] = call

        def target() -> None:
            result = None
            try:
                result = run_tool(self.service, name, arguments, call)
            finally:
                with self._lock:
                    self._calls.pop(key, None)
                    self._threads.discard(threading.current_thread())
                reply(_result(rid, result) if result is not None else None)

        t = threading.Thread(target=target, name=f"call-{rid}", daemon=True)
        with self._lock:
            self._threads.add(t)
        t.start()

    # -- shutdown -------------------------------------------------------------------------
    def cancel_all(self, reason: str) -> None:
        with self._lock:
            calls = list(self._calls.values())
        for call in calls:
            call.cancel(reason)

    def drain(self, timeout_s: float) -> None:
        """Wait (bounded) for the calls in flight to answer, no longer once :meth:`hurry` is
        called; cancel what is left."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            while t.is_alive() and not self._hurry.is_set() and time.monotonic() < deadline:
                t.join(min(0.1, max(0.0, deadline - time.monotonic())))
        self.cancel_all("the server is shutting down")

    def hurry(self, reason: str) -> None:
        """Stop waiting for the calls in flight: cancel them (they stop at their next check)."""
        self._hurry.set()
        self.cancel_all(reason)


def serve_stdio(service: CodesiftService, *, version: str, shutdown_s: float) -> None:
    """Serve on this process's stdin/stdout until stdin closes or a signal arrives, then stop
    the index jobs (SIGINT to each, bounded waits) before returning."""
    proto_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    # Anything else written to fd 1 (a stray print, a native library) goes to stderr.
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    proto_in = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=READ_BUFFER)
    server = StdioServer(service, proto_in, proto_out, version=version)
    signals = {"n": 0}

    def on_signal(signum, frame) -> None:
        signals["n"] += 1
        if signals["n"] == 1:
            log.info("received %s: stopping", signal.Signals(signum).name)
            raise _Stop()
        # Already stopping (a second signal, or the client's SIGTERM after its EOF grace
        # period): the jobs leave at once (their journal keeps the index consistent) and the
        # calls in flight stop at their next check, so the process is gone before a SIGKILL.
        log.warning("received %s while stopping: stopping the index jobs at once", signal.Signals(signum).name)
        service.jobs.kill_all()
        server.hurry("the server is stopping")

    installed = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            installed.append((sig, signal.signal(sig, on_signal)))
    drain_s = DRAIN_S
    try:
        server.serve()
    except _Stop:
        drain_s = SIGNAL_DRAIN_S
    signals["n"] = max(signals["n"], 1)  # from here on, a signal means "hurry", never an exception
    # The jobs are stopped while the calls in flight finish: both within their bounds.
    stopper = threading.Thread(target=service.close, args=(shutdown_s,), name="stop-jobs", daemon=True)
    stopper.start()
    server.drain(drain_s)
    stopper.join(shutdown_s + 1.0)
    for sig, old in installed:
        signal.signal(sig, old)
