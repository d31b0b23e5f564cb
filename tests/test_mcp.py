"""``codesift mcp`` driven by the official MCP SDK client over stdio, as a real client would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from support.harness import TESTS, sample_tree

mcp = pytest.importorskip("mcp")
from mcp import StdioServerParameters  # noqa: E402
from mcp.client.client import Client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

pytestmark = pytest.mark.timeout(180)

TOOLS = {"search_code", "find_similar", "read_code", "index_status", "reindex", "job_status"}


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("CODESIFT_INDEX_DIR", None)
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcp")
    root = sample_tree(tmp / "repo")
    (root / "pkg").mkdir()
    (root / "pkg" / "config_loader.py").write_text(
        "def load_yaml_config(path):\n    '''Parse a YAML configuration file.'''\n"
        "    with open(path) as fh:\n        return fh.read()\n")
    (tmp / "secret.txt").write_text("top secret\n")
    os.symlink(tmp / "secret.txt", root / "leak.txt")
    os.symlink(tmp, root / "outside_dir")
    index_dir = tmp / "index"
    r = subprocess.run([sys.executable, "-m", "codesift", "index", str(root), "--index-dir", str(index_dir),
                        "--embedder", "hash", "--json"], capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode == 0, r.stderr
    return root, index_dir


def _params(root: Path, index_dir: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "codesift", "mcp", str(root), "--index-dir", str(index_dir), *extra],
                                 env=_env())


async def _call(client, name: str, args: dict | None = None):
    with anyio.fail_after(60):
        return await client.call_tool(name, args or {})


def _err(result) -> dict:
    assert result.is_error, result
    err = result.structured_content["error"]
    assert err["code"] and err["message"]
    return err


def test_tools_over_stdio(project):
    root, index_dir = project

    async def main():
        with anyio.fail_after(120):
            async with Client(_params(root, index_dir), mode="legacy") as client:
                assert client.server_info.name == "codesift"
                tools = (await client.list_tools()).tools
                assert {t.name for t in tools} == TOOLS
                for t in tools:
                    assert t.description and len(t.description) > 40
                    assert t.input_schema["type"] == "object"
                    assert t.output_schema is not None

                # search_code: structured hits plus a text rendering
                r = await _call(client, "search_code", {"query": "parse yaml configuration file", "k": 3})
                assert not r.is_error, r
                hits = r.structured_content["hits"]
                assert 1 <= len(hits) <= 3
                assert hits[0]["path"] == "pkg/config_loader.py"
                for key in ("path", "start_line", "end_line", "symbol", "kind", "language", "score", "content"):
                    assert key in hits[0]
                assert "pkg/config_loader.py" in r.content[0].text

                r = await _call(client, "search_code", {"query": "function", "k": 50, "mode": "text",
                                                        "languages": ["javascript"]})
                assert not r.is_error, r
                assert {h["language"] for h in r.structured_content["hits"]} <= {"javascript"}
                r = await _call(client, "search_code", {"query": "value scaled", "paths": ["pkg/**"]})
                assert not r.is_error and all(h["path"].startswith("pkg/") for h in r.structured_content["hits"])

                # find_similar
                r = await _call(client, "find_similar", {"path": "mod_00.py", "line": 6, "k": 4})
                assert not r.is_error, r
                sims = r.structured_content["hits"]
                assert sims and all(not (h["path"] == "mod_00.py" and h["start_line"] <= 6 <= h["end_line"])
                                    for h in sims)

                # read_code
                r = await _call(client, "read_code", {"path": "pkg/config_loader.py", "start_line": 2,
                                                      "end_line": 3})
                assert not r.is_error, r
                assert r.structured_content["content"] == (
                    "    '''Parse a YAML configuration file.'''\n    with open(path) as fh:")
                assert r.structured_content["total_lines"] == 4
                r = await _call(client, "read_code", {"path": "./pkg/../pkg/config_loader.py"})
                assert _err(r)["code"] == "path_outside_root"

                # index_status
                r = await _call(client, "index_status")
                assert not r.is_error, r
                st = r.structured_content
                assert st["exists"] and st["files"]["indexed"] >= 14 and st["chunks"] > 0
                assert st["embedder"]["name"].startswith("hash")
                assert st["last_run"]["status"] == "ok"
                assert st["stale"]["total"] == 0 and st["stale"]["complete"]
                assert any(s["path"] == "leak.txt" for s in st["skipped"])

    anyio.run(main)


def test_path_traversal_and_bad_arguments(project):
    root, index_dir = project

    async def main():
        with anyio.fail_after(120):
            async with Client(_params(root, index_dir), mode="legacy") as client:
                for path in ("../secret.txt", "/etc/passwd", "leak.txt", "outside_dir/secret.txt",
                             "pkg/../../secret.txt", "~/x"):
                    r = await _call(client, "read_code", {"path": path})
                    assert _err(r)["code"] == "path_outside_root", (path, r)
                    assert "secret" not in r.content[0].text.replace(path, "")
                r = await _call(client, "find_similar", {"path": "../secret.txt", "line": 1})
                assert _err(r)["code"] == "path_outside_root"

                bad = [
                    ("search_code", {}, "missing required argument 'query'"),
                    ("search_code", {"query": ""}, "must not be empty"),
                    ("search_code", {"query": "x", "k": 0}, "k must be between 1 and 100"),
                    ("search_code", {"query": "x", "k": 10**9}, "k must be between 1 and 100"),
                    ("search_code", {"query": "x", "k": "ten"}, "k must be an integer"),
                    ("search_code", {"query": "x", "mode": "fuzzy"}, "unknown mode 'fuzzy'"),
                    ("search_code", {"query": "x", "languages": "python", "colour": 1}, "unknown argument"),
                    ("search_code", {"query": "x", "paths": [1, 2]}, "paths must be a list of strings"),
                    ("read_code", {"path": "mod_00.py", "start_line": 10**6}, "past the end"),
                    ("read_code", {"path": "mod_00.py", "start_line": 5, "end_line": 2}, "must be >= start_line"),
                    ("read_code", {"path": "nope.py"}, "no such file"),
                    ("read_code", {"path": "pkg"}, "not a regular file"),
                    ("find_similar", {"path": "mod_00.py", "line": 10**6}, "no indexed chunk"),
                    ("find_similar", {"path": "mod_00.py"}, "missing required argument 'line'"),
                    ("job_status", {"job_id": "nope"}, "unknown job id"),
                    ("reindex", {"full": "yes"}, "full must be true or false"),
                ]
                for name, args, expect in bad:
                    r = await _call(client, name, args)
                    assert expect in _err(r)["message"], (name, args, r)

                # past EOF on end_line is clamped, not an error
                r = await _call(client, "read_code", {"path": "util.js", "start_line": 4, "end_line": 999})
                assert not r.is_error and r.structured_content["end_line"] == 5

                # an unknown tool is a protocol error (-32602), not a crash
                with pytest.raises(MCPError):
                    with anyio.fail_after(30):
                        await client.session.call_tool("no_such_tool", {})
                # still alive
                r = await _call(client, "index_status")
                assert not r.is_error

    anyio.run(main)


def test_reindex_job(tmp_path):
    root = sample_tree(tmp_path / "repo", files=3)
    index_dir = tmp_path / "index"

    async def main():
        with anyio.fail_after(150):
            async with Client(_params(root, index_dir, "--embedder", "hash"), mode="auto") as client:
                r = await _call(client, "index_status")
                assert not r.is_error and r.structured_content["exists"] is False
                r = await _call(client, "search_code", {"query": "x"})
                assert _err(r)["code"] == "no_index"

                t0 = time.monotonic()
                r = await _call(client, "reindex")
                assert not r.is_error, r
                assert time.monotonic() - t0 < 5  # returns at once
                job_id = r.structured_content["job_id"]
                r2 = await _call(client, "reindex")  # a second one reuses the running job
                if r2.structured_content["state"] == "running":
                    assert r2.structured_content["job_id"] == job_id and r2.structured_content["reused"]
                with anyio.fail_after(90):
                    while True:
                        r = await _call(client, "job_status", {"job_id": job_id})
                        assert not r.is_error, r
                        if r.structured_content["state"] != "running":
                            break
                        await anyio.sleep(0.2)
                job = r.structured_content
                assert job["state"] == "succeeded", job
                assert job["summary"]["files"]["indexed"] == 5

                (root / "fresh.py").write_text("def quokka_counter():\n    return 42\n")
                r = await _call(client, "index_status")
                assert r.structured_content["stale"]["new"] == ["fresh.py"]
                job_id = (await _call(client, "reindex")).structured_content["job_id"]
                with anyio.fail_after(90):
                    while (await _call(client, "job_status", {"job_id": job_id})).structured_content[
                            "state"] == "running":
                        await anyio.sleep(0.2)
                r = await _call(client, "search_code", {"query": "quokka counter", "k": 1})
                assert r.structured_content["hits"][0]["path"] == "fresh.py"

    anyio.run(main)


def test_reindex_refused_while_locked(tmp_path):
    """Another process holds the writer lock: reindex fails at once with 'locked by pid N'."""
    root = sample_tree(tmp_path / "repo", files=2)
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from codesift.store.lock import "
                               "WriterLock; l = WriterLock(Path(sys.argv[1])); l.acquire(); print('held', "
                               "flush=True); time.sleep(60)", str(index_dir / "writer.lock")],
        stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"

        async def main():
            with anyio.fail_after(60):
                async with Client(_params(root, index_dir), mode="legacy") as client:
                    r = await _call(client, "reindex")
                    err = _err(r)
                    assert err["code"] == "locked" and f"pid {holder.pid}" in err["message"]

        anyio.run(main)
    finally:
        holder.kill()
        holder.wait(10)


def test_initialize_is_fast_and_stdout_is_protocol_only(project):
    """Raw JSON-RPC: initialize answered quickly after process start; every stdout line is JSON-RPC."""
    root, index_dir = project
    msgs = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "search_code", "arguments": {"query": "scaled value", "k": 2}}},
        {"jsonrpc": "2.0", "id": 3, "method": "server/discover", "params": {}},
    ]
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "codesift", "mcp", str(root), "--index-dir", str(index_dir)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        p.stdin.write((json.dumps(msgs[0]) + "\n").encode())
        p.stdin.flush()
        first = json.loads(p.stdout.readline())
        elapsed = time.monotonic() - t0
        assert first["id"] == 1 and first["result"]["protocolVersion"] == "2025-06-18"
        assert elapsed < 2.0, f"initialize took {elapsed:.2f}s"  # ~0.15 s here; generous for loaded CI
        rest = b"".join((json.dumps(m) + "\n").encode() for m in msgs[1:])
        out, err = p.communicate(input=rest, timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    lines = [first] + [json.loads(ln) for ln in out.decode().splitlines()]
    assert all(m["jsonrpc"] == "2.0" for m in lines)
    by_id = {m["id"]: m for m in lines}
    assert by_id[2]["result"]["structuredContent"]["hits"]
    assert by_id[3]["error"]["code"] == -32601
    assert p.returncode == 0


def test_unknown_protocol_version_and_garbage(project):
    root, index_dir = project
    p = subprocess.run(
        [sys.executable, "-m", "codesift", "mcp", str(root), "--index-dir", str(index_dir)],
        input=b"not json\n" + json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                          "params": {"protocolVersion": "1999-01-01", "capabilities": {},
                                                     "clientInfo": {"name": "t", "version": "1"}}}).encode()
              + b"\n" + json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}).encode() + b"\n",
        capture_output=True, timeout=30, env=_env())
    lines = [json.loads(ln) for ln in p.stdout.decode().splitlines()]
    assert lines[0]["error"]["code"] == -32700
    assert lines[1]["result"]["protocolVersion"] == "2025-11-25"
    assert lines[2]["result"] == {}
    assert p.returncode == 0
