"""A real HTTP server on 127.0.0.1 that speaks OpenAI's ``POST /v1/embeddings``.

Vectors are deterministic (seeded by the text), so a faulty run and a clean run must
store identical rows. Faults are injected per request number:

    server.fault("500", times=3)             # the next 3 embedding requests answer 500
    server.fault("429", times=1, retry_after=1)
    server.fault("hang", times=1)            # no answer until the server stops
    server.fault("drop", times=2)            # the connection is closed without an answer
    server.fault("wrong_dim"|"wrong_count"|"malformed"|"nan", times=N)
    server.fault("die", after=N)             # after N more requests, the server goes away

``stop()`` closes the listening socket *and* every open connection (a killed server);
``start()`` brings it back on the same port. Every wait in here has a deadline.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

DIM = 24
HANG_LIMIT_S = 30.0
JOIN_TIMEOUT_S = 5.0


def vector(text: str, dim: int = DIM) -> list[float]:
    seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return [float(x) for x in v / np.linalg.norm(v)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, owner: "FakeEmbeddingServer") -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def process_request(self, request, client_address):
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def kill_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's pool is exercised

    def log_message(self, format, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 - http.server's naming
        owner: FakeEmbeddingServer = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/embeddings":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._send(400, {"error": {"message": "bad json"}})
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        fault, number = owner.take(self.headers.get("Authorization"), texts, body.get("model"))
        if owner.expected_key and self.headers.get("Authorization") != f"Bearer {owner.expected_key}":
            # An API that echoes what it got: the client must scrub it from every message.
            return self._send(401, {"error": {"message": f"invalid key {self.headers.get('Authorization')}"}})
        if fault == "die":
            threading.Thread(target=owner.stop, daemon=True).start()
            return self._drop()
        if fault == "drop":
            return self._drop()
        if fault == "hang":
            owner.release.wait(HANG_LIMIT_S)
            return self._drop()
        if fault == "500":
            return self._send(500, {"error": {"message": "internal error (injected)"}})
        if fault == "503":
            return self._send(503, {"error": {"message": "overloaded (injected)"}})
        if fault == "429":
            return self._send(429, {"error": {"message": "rate limited (injected)"}},
                              headers={"Retry-After": str(owner.retry_after)})
        if fault == "malformed":
            return self._send_raw(200, b'{"data": [{"embedding": [0.1, 0.2')
        dim = owner.dim
        data = [{"object": "embedding", "index": i, "embedding": vector(t, dim)} for i, t in enumerate(texts)]
        if fault == "wrong_dim":
            for d in data:
                d["embedding"] = d["embedding"][:-1]
        elif fault == "wrong_count":
            data = data[:-1] if len(data) > 1 else data + data
        elif fault == "nan":
            data[0]["embedding"][0] = float("nan")
        return self._send(200, {"object": "list", "model": body.get("model"), "data": data})

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode("utf-8"), headers)

    def _send_raw(self, status: int, data: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FakeEmbeddingServer:
    def __init__(self, *, dim: int = DIM, expected_key: str | None = None) -> None:
        self.dim = dim
        self.expected_key = expected_key
        self.port = 0
        self.retry_after = 1
        self.requests = 0
        self.texts_seen = 0
        self.max_texts = 0  # the most texts one request carried
        self.auth_seen: set[str | None] = set()
        self._faults: list[dict] = []
        self._lock = threading.Lock()
        self.release = threading.Event()
        self.down = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "FakeEmbeddingServer":
        self.release.clear()
        self.down.clear()
        self._server = _Server(("127.0.0.1", self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-embedding-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self.release.set()
        if server is None:
            return
        self._server = None
        server.shutdown()
        server.server_close()
        server.kill_connections()
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)
        self.down.set()

    def fault(self, kind: str, *, times: int = 1, after: int = 0, retry_after: int = 1) -> None:
        """Queue a fault: ``after`` good requests (counted once the faults queued before it
        are spent), then ``kind`` for ``times`` requests."""
        with self._lock:
            self.retry_after = retry_after
            self._faults.append({"kind": kind, "skip": after, "left": times})

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests = 0
            self.texts_seen = 0
            self.max_texts = 0
            self.auth_seen.clear()

    def take(self, auth: str | None, texts: list, model: str | None) -> tuple[str | None, int]:
        with self._lock:
            self.requests += 1
            self.texts_seen += len(texts or [])
            self.max_texts = max(self.max_texts, len(texts or []))
            self.auth_seen.add(auth)
            while self._faults:
                head = self._faults[0]
                if head["skip"] > 0:
                    head["skip"] -= 1
                    return None, self.requests
                if head["left"] > 0:
                    head["left"] -= 1
                    if head["left"] == 0:
                        self._faults.pop(0)
                    return head["kind"], self.requests
                self._faults.pop(0)
            return None, self.requests

    def __enter__(self) -> "FakeEmbeddingServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
