"""What the MCP tests share: the sample project, the server's command line, and a raw
JSON-RPC client over a ``codesift mcp`` subprocess (for what no SDK sends: garbage, bad
ids, batches, oversized lines, EOF and signals at chosen moments)."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from support.harness import TESTS, sample_tree

CLIENTS = TESTS / "mcp_clients"
TRAVERSAL = ["../secret.txt", "/etc/passwd", "leak.txt", "outside_dir/secret.txt", "pkg/../../secret.txt", "~/x"]
SLOW = "python:support.faults:slow"


def env(**extra: str) -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TESTS), e.get("PYTHONPATH", "")])
    e.pop("CODESIFT_INDEX_DIR", None)
    e.update(extra)
    return e


def index(root: Path, index_dir: Path | None, embedder: str = "hash", **extra_env: str) -> dict:
    argv = [sys.executable, "-m", "codesift", "index", str(root), "--embedder", embedder, "--json"]
    if index_dir is not None:
        argv += ["--index-dir", str(index_dir)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env(**extra_env))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def build_project(tmp: Path) -> tuple[Path, Path]:
    """The sample tree, a config loader to find, a secret outside it, symlinks that lead out."""
    root = sample_tree(tmp / "repo")
    (root / "pkg").mkdir()
    (root / "pkg" / "config_loader.py").write_text(
        "def load_yaml_config(path):\n    '''Parse a YAML configuration file.'''\n"
        "    with open(path) as fh:\n        return fh.read()\n")
    (tmp / "secret.txt").write_text("top secret\n")
    os.symlink(tmp / "secret.txt", root / "leak.txt")
    os.symlink(tmp, root / "outside_dir")
    index_dir = tmp / "index"
    index(root, index_dir)
    return root, index_dir


def server_argv(*args: str, verbose: bool = False) -> list[str]:
    return [sys.executable, "-m", "codesift", *(["-v"] if verbose else []), "mcp", *args]


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the HTTP server exited with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)  # polling a port with a deadline
    raise AssertionError(f"{host}:{port} did not accept connections within {timeout}s")


class RawClient:
    """Newline-delimited JSON-RPC over a server subprocess; replies are matched by id."""

    def __init__(self, argv: list[str], **extra_env: str) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env(**extra_env))
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[bytes] = []
        self.seen: list = []  # every message received, in order (request() skips others' replies)
        self._next = 1000
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(iter(self.proc.stderr.readline, b"")),
                         daemon=True).start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, b""):
            try:
                msg = json.loads(line)
                self.seen.append(msg)
                self.lines.put(msg)
            except ValueError:
                self.lines.put({"__not_json__": line.decode(errors="replace")[:500]})
        self.lines.put(None)

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message) -> None:
        self.write(json.dumps(message).encode() + b"\n")

    def next(self, timeout: float = 60.0):
        try:
            msg = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no reply within {timeout}s; stderr: {self.stderr_text()[-2000:]}") from None
        assert not (isinstance(msg, dict) and "__not_json__" in msg), f"stdout carried a non-JSON line: {msg}"
        return msg

    def request(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        self._next += 1
        rid = self._next
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next(max(0.01, deadline - time.monotonic()))
            assert msg is not None, f"the server closed stdout; stderr: {self.stderr_text()[-2000:]}"
            if isinstance(msg, dict) and msg.get("id") == rid:
                return msg

    def initialize(self, version: str = "2025-06-18") -> dict:
        r = self.request("initialize", {"protocolVersion": version, "capabilities": {},
                                        "clientInfo": {"name": "raw", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return r["result"]

    def tool(self, name: str, arguments: dict | None = None, timeout: float = 60.0) -> dict:
        return self.request("tools/call", {"name": name, "arguments": arguments or {}}, timeout)["result"]

    def stderr_text(self) -> str:
        return b"".join(self.stderr).decode(errors="replace")

    def close(self, timeout: float = 60.0) -> int:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)


def tool_error(result: dict) -> dict:
    """The structured error of an error result (JSON in the text content)."""
    assert result.get("isError") is True, result
    assert "structuredContent" not in result, result
    err = json.loads(result["content"][0]["text"])["error"]
    assert err["code"] and err["message"] and err["action"], err
    return err
