"""``codesift mcp`` driven by the official Python SDK client, and by raw JSON-RPC for what no
SDK sends (garbage, bad ids, batches, oversized lines, cancellation, EOF and signals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from mcp_clients.project import SLOW, TRAVERSAL, RawClient, build_project, env, index, server_argv, tool_error
from support.harness import Codesift, sample_tree, wait_for

mcp = pytest.importorskip("mcp")
from mcp import StdioServerParameters  # noqa: E402
from mcp.client.client import Client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

pytestmark = pytest.mark.timeout(180)

TOOLS = {"search_code", "find_similar", "read_code", "index_status", "reindex", "job_status"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return build_project(tmp_path_factory.mktemp("mcp"))


def _params(*args: str, **extra_env: str) -> StdioServerParameters:
    argv = server_argv(*args)
    return StdioServerParameters(command=argv[0], args=argv[1:], env=env(**extra_env))


async def _call(client, name: str, args: dict | None = None):
    with anyio.fail_after(60):
        return await client.call_tool(name, args or {})


def _err(result) -> dict:
    assert result.is_error, result
    assert result.structured_content is None, result  # what the TypeScript SDK would reject
    err = json.loads(result.content[0].text)["error"]
    assert err["code"] and err["message"] and err["action"]
    return err


def test_tools_over_stdio(project):
    root, index_dir = project

    async def main():
        with anyio.fail_after(120):
            async with Client(_params(str(root), "--index-dir", str(index_dir)), mode="legacy") as client:
                assert client.server_info.name == "codesift"
                tools = (await client.list_tools()).tools
                assert {t.name for t in tools} == TOOLS
                for t in tools:
                    assert t.description and len(t.description) > 80
                    assert "Cost" in t.description  # when to use it and what it costs
                    assert t.input_schema["type"] == "object"
                    assert t.output_schema is not None

                r = await _call(client, "search_code", {"query": "parse yaml configuration file", "k": 3})
                assert not r.is_error, r
                s = r.structured_content
                hits = s["hits"]
                assert 1 <= len(hits) <= 3
                assert hits[0]["path"] == "pkg/config_loader.py" and hits[0]["repo"] == root.name
                for key in ("repo", "path", "start_line", "end_line", "symbol", "kind", "language", "score",
                            "content"):
                    assert key in hits[0]
                assert "pkg/config_loader.py" in r.content[0].text
                # coverage: an agent can tell a complete index from a partial one
                assert s["complete"] is True
                cov = s["coverage"][0]
                assert cov["repo"] == root.name and cov["complete"] and cov["stale_files"] == 0
                assert cov["files_indexed"] >= 14 and cov["pending_files"] == 0 and not cov["indexing"]
                assert cov["last_run"]["status"] == "ok" and cov["advice"] is None

                r = await _call(client, "search_code", {"query": "function", "k": 50, "mode": "text",
                                                        "languages": ["javascript"]})
                assert not r.is_error, r
                assert {h["language"] for h in r.structured_content["hits"]} <= {"javascript"}
                r = await _call(client, "search_code", {"query": "value scaled", "paths": ["pkg/**"]})
                assert not r.is_error and all(h["path"].startswith("pkg/") for h in r.structured_content["hits"])

                r = await _call(client, "find_similar", {"path": "mod_00.py", "line": 6, "k": 4})
                assert not r.is_error, r
                sims = r.structured_content["hits"]
                assert sims and all(not (h["path"] == "mod_00.py" and h["start_line"] <= 6 <= h["end_line"])
                                    for h in sims)
                assert r.structured_content["coverage"][0]["complete"]

                r = await _call(client, "read_code", {"path": "pkg/config_loader.py", "start_line": 2,
                                                      "end_line": 3})
                assert not r.is_error, r
                assert r.structured_content["content"] == (
                    "    '''Parse a YAML configuration file.'''\n    with open(path) as fh:")
                assert r.structured_content["total_lines"] == 4 and r.structured_content["repo"] == root.name

                r = await _call(client, "index_status")
                assert not r.is_error, r
                st = r.structured_content
                assert st["exists"] and st["complete"] and len(st["repos"]) == 1
                rs = st["repos"][0]
                assert rs["files"]["indexed"] >= 14 and rs["chunks"] > 0
                assert rs["embedder"]["name"].startswith("hash")
                assert rs["last_run"]["status"] == "ok"
                assert rs["stale"]["total"] == 0 and rs["stale"]["complete"]
                assert any(s["path"] == "leak.txt" for s in rs["skipped"])

    anyio.run(main)


def test_path_traversal_and_bad_arguments(project):
    root, index_dir = project

    async def main():
        with anyio.fail_after(120):
            async with Client(_params(str(root), "--index-dir", str(index_dir)), mode="legacy") as client:
                for path in TRAVERSAL:
                    r = await _call(client, "read_code", {"path": path})
                    assert _err(r)["code"] == "path_outside_root", (path, r)
                    assert "secret" not in r.content[0].text.replace(path, "")
                r = await _call(client, "find_similar", {"path": "../secret.txt", "line": 1})
                assert _err(r)["code"] == "path_outside_root"

                bad = [
                    ("search_code", {}, "invalid_arguments", "missing required argument 'query'"),
                    ("search_code", {"query": ""}, "invalid_arguments", "must not be empty"),
                    ("search_code", {"query": "x", "k": 0}, "invalid_arguments", "k must be between 1 and 100"),
                    ("search_code", {"query": "x", "k": 10**9}, "invalid_arguments", "k must be between 1 and 100"),
                    ("search_code", {"query": "x", "k": "ten"}, "invalid_arguments", "k must be an integer"),
                    ("search_code", {"query": "x", "mode": "fuzzy"}, "invalid_arguments", "unknown mode 'fuzzy'"),
                    ("search_code", {"query": "x", "colour": 1}, "invalid_arguments", "unknown argument"),
                    ("search_code", {"query": "x", "paths": [1, 2]}, "invalid_arguments", "list of strings"),
                    ("search_code", {"query": "x", "repos": ["nope"]}, "unknown_repo", "unknown repo(s) 'nope'"),
                    ("read_code", {"path": "mod_00.py", "start_line": 10**6}, "line_out_of_range", "past the end"),
                    ("read_code", {"path": "mod_00.py", "start_line": 5, "end_line": 2}, "invalid_arguments",
                     "must be >= start_line"),
                    ("read_code", {"path": "nope.py"}, "not_found", "no such file"),
                    ("read_code", {"path": "pkg"}, "not_a_file", "not a regular file"),
                    ("read_code", {"path": "mod_00.py", "repo": "other"}, "unknown_repo", "unknown repo 'other'"),
                    ("find_similar", {"path": "mod_00.py", "line": 10**6}, "not_indexed", "no indexed chunk"),
                    ("find_similar", {"path": "mod_00.py"}, "invalid_arguments", "missing required argument 'line'"),
                    ("index_status", {"verbose": True}, "invalid_arguments", "unknown argument"),
                    ("job_status", {"job_id": "nope"}, "unknown_job", "unknown job id"),
                    ("reindex", {"full": "yes"}, "invalid_arguments", "full must be true or false"),
                ]
                for name, args, code, expect in bad:
                    err = _err(await _call(client, name, args))
                    assert err["code"] == code and expect in err["message"], (name, args, err)

                r = await _call(client, "read_code", {"path": "util.js", "start_line": 4, "end_line": 999})
                assert not r.is_error and r.structured_content["end_line"] == 5

                # an unknown tool is a protocol error (-32602), as over HTTP
                with pytest.raises(MCPError) as info:
                    with anyio.fail_after(30):
                        await client.session.call_tool("no_such_tool", {})
                assert info.value.code == -32602
                r = await _call(client, "index_status")
                assert not r.is_error

    anyio.run(main)


def test_reindex_job_reports_progress_and_summary(tmp_path):
    root = sample_tree(tmp_path / "repo", files=3)
    index_dir = tmp_path / "index"

    async def main():
        with anyio.fail_after(150):
            async with Client(_params(str(root), "--index-dir", str(index_dir), "--embedder", "hash"),
                              mode="auto") as client:
                r = await _call(client, "index_status")
                assert not r.is_error and r.structured_content["exists"] is False
                assert "reindex" in r.structured_content["repos"][0]["coverage"]["advice"]
                err = _err(await _call(client, "search_code", {"query": "x"}))
                assert err["code"] == "no_index" and "reindex" in err["action"]

                r = await _call(client, "reindex")  # returns at once: the job runs in the background
                assert not r.is_error, r
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
                assert job["state"] == "succeeded" and job["error"] is None, job
                assert job["summary"]["status"] == "ok" and job["summary"]["files"]["indexed"] == 5
                assert job["progress"]["files_indexed"] == 5 and job["progress"]["chunks_written"] > 0

                (root / "fresh.py").write_text("def quokka_counter():\n    return 42\n")
                r = await _call(client, "index_status")
                assert r.structured_content["repos"][0]["stale"]["new"] == ["fresh.py"]
                r = await _call(client, "search_code", {"query": "quokka counter", "k": 1})
                cov = r.structured_content["coverage"][0]
                assert not r.structured_content["complete"] and cov["stale_files"] == 1
                assert "reindex" in cov["advice"]
                job_id = (await _call(client, "reindex")).structured_content["job_id"]
                with anyio.fail_after(90):
                    while (await _call(client, "job_status", {"job_id": job_id})).structured_content[
                            "state"] == "running":
                        await anyio.sleep(0.2)
                r = await _call(client, "search_code", {"query": "quokka counter", "k": 1})
                assert r.structured_content["hits"][0]["path"] == "fresh.py"
                assert r.structured_content["complete"]

    anyio.run(main)


def test_reindex_refused_while_locked(tmp_path):
    """Another process holds the writer lock: reindex fails at once with code 'locked'."""
    root = sample_tree(tmp_path / "repo", files=2)
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from codesift.store.lock import "
                               "WriterLock; l = WriterLock(Path(sys.argv[1])); l.acquire(); print('held', "
                               "flush=True); time.sleep(60)", str(index_dir / "writer.lock")],
        stdout=subprocess.PIPE, text=True, env=env())
    try:
        assert holder.stdout.readline().strip() == "held"

        async def main():
            with anyio.fail_after(60):
                async with Client(_params(str(root), "--index-dir", str(index_dir)), mode="legacy") as client:
                    err = _err(await _call(client, "reindex"))
                    assert err["code"] == "locked" and f"pid {holder.pid}" in err["message"]

        anyio.run(main)
    finally:
        holder.kill()
        holder.wait(10)


def test_failed_job_reports_the_summary_error(tmp_path):
    """A job's error comes from its run's JSON summary; searches then say the index is incomplete."""
    root = sample_tree(tmp_path / "repo", files=2)
    c = RawClient(server_argv(str(root), "--index-dir", str(tmp_path / "index"), "--embedder",
                              "python:support.faults:raise_always"))
    try:
        c.initialize()
        job_id = c.tool("reindex")["structuredContent"]["job_id"]
        job = wait_for(lambda: (st := c.tool("job_status", {"job_id": job_id})["structuredContent"])["state"]
                       != "running" and st, 90, "the job to end", interval=0.2)
        assert job["state"] == "failed" and job["summary"]["status"] == "failed", job
        assert job["error"]["code"] == "index_failed" and "embedder is broken" in job["error"]["message"]
        assert job["error"]["action"] and job["exit_code"] == 1
        s = c.tool("search_code", {"query": "scaled value"})["structuredContent"]
        cov = s["coverage"][0]
        assert s["hits"] == [] and s["complete"] is False and cov["last_run"]["status"] == "failed"
        assert "report this to the user" in cov["advice"]
    finally:
        assert c.close() == 0


def test_several_repositories(tmp_path):
    """``codesift mcp A B``: one server, a repos filter, the repo of each hit, read_code per root."""
    a = sample_tree(tmp_path / "alpha", files=2)
    b = sample_tree(tmp_path / "beta", files=1)
    (b / "wombat.py").write_text("def wombat_burrow_depth():\n    return 7\n")
    (tmp_path / "beta" / "only_beta.txt").write_text("beta\n")
    c = sample_tree(tmp_path / "gamma", files=1)  # never indexed
    index(a, None)
    index(b, None)

    async def main():
        with anyio.fail_after(120):
            async with Client(_params(str(a), str(b), str(c)), mode="legacy") as client:
                r = await _call(client, "index_status")
                assert [x["repo"] for x in r.structured_content["repos"]] == ["alpha", "beta", "gamma"]
                assert r.structured_content["exists"] is False and r.structured_content["repos"][1]["exists"]
                r = await _call(client, "search_code", {"query": "wombat burrow depth", "k": 5})
                s = r.structured_content
                assert s["hits"][0]["repo"] == "beta" and s["hits"][0]["path"] == "wombat.py"
                assert {h["repo"] for h in s["hits"]} <= {"alpha", "beta"}
                assert [c["repo"] for c in s["coverage"]] == ["alpha", "beta", "gamma"]
                gamma = s["coverage"][2]
                assert not s["complete"] and not gamma["exists"] and "reindex with repo='gamma'" in gamma["advice"]
                err = _err(await _call(client, "search_code", {"query": "wombat", "repos": ["gamma"]}))
                assert err["code"] == "no_index"
                r = await _call(client, "search_code", {"query": "wombat burrow depth", "repos": ["alpha"]})
                assert {h["repo"] for h in r.structured_content["hits"]} == {"alpha"}
                assert [c["repo"] for c in r.structured_content["coverage"]] == ["alpha"]

                r = await _call(client, "read_code", {"path": "wombat.py", "repo": "beta"})
                assert not r.is_error and "wombat_burrow_depth" in r.structured_content["content"]
                assert _err(await _call(client, "read_code", {"path": "wombat.py", "repo": "alpha"}))["code"] \
                    == "not_found"
                err = _err(await _call(client, "read_code", {"path": "../beta/wombat.py", "repo": "alpha"}))
                assert err["code"] == "path_outside_root"
                err = _err(await _call(client, "read_code", {"path": "wombat.py"}))
                assert err["code"] == "invalid_arguments" and "alpha, beta" in err["message"]
                r = await _call(client, "find_similar", {"path": "wombat.py", "line": 1, "repo": "beta"})
                assert not r.is_error and {h["repo"] for h in r.structured_content["hits"]} == {"beta"}
                err = _err(await _call(client, "reindex"))
                assert err["code"] == "invalid_arguments" and "repo" in err["message"]

    anyio.run(main)


def test_several_roots_refuse_one_index_dir(tmp_path):
    a, b = sample_tree(tmp_path / "a", files=1), sample_tree(tmp_path / "b", files=1)
    r = subprocess.run(server_argv(str(a), str(b), "--index-dir", str(tmp_path / "ix")), capture_output=True,
                       text=True, timeout=30, env=env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "--index-dir" in r.stderr


# ----------------------------------------------------------------------------- raw JSON-RPC

def test_stdout_is_protocol_only(project):
    """Every stdout line is a JSON-RPC message (the reader thread fails on anything else)."""
    root, index_dir = project
    c = RawClient(server_argv(str(root), "--index-dir", str(index_dir)))
    try:
        assert c.initialize("2025-06-18")["protocolVersion"] == "2025-06-18"
        assert c.tool("search_code", {"query": "scaled value", "k": 2})["structuredContent"]["hits"]
        assert c.request("server/discover")["error"]["code"] == -32601
    finally:
        assert c.close() == 0


def test_protocol_corners(project):
    """Garbage, bad ids, batches, cursors, log levels, an oversized line: one reply each, no crash."""
    root, index_dir = project
    c = RawClient(server_argv(str(root), "--index-dir", str(index_dir)))
    try:
        c.write(b"not json\n")
        assert c.next()["error"]["code"] == -32700
        # a batch before a version that allows them
        c.send([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
        assert c.next()["error"]["code"] == -32600
        assert c.initialize("2025-03-26")["protocolVersion"] == "2025-03-26"
        for bad_id in ([1], {"a": 1}, None, 1.5, True):
            c.send({"jsonrpc": "2.0", "id": bad_id, "method": "ping"})
            reply = c.next()
            assert reply == {"jsonrpc": "2.0", "id": None,
                             "error": {"code": -32600, "message": reply["error"]["message"]}}, bad_id
        for bad_id in ([1], {"a": 1}, None):  # a cancellation naming such an id is ignored
            c.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": bad_id}})
        c.send({"jsonrpc": "1.0", "id": 7, "method": "ping"})
        assert c.next()["error"]["code"] == -32600
        c.send(42)
        assert c.next()["error"]["code"] == -32600
        c.write(b"[]\n")
        assert c.next()["error"]["code"] == -32600

        # a batch under 2025-03-26: one array of replies, notifications get none
        c.send([{"jsonrpc": "2.0", "id": "a", "method": "ping"},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": "b", "method": "tools/call",
                 "params": {"name": "read_code", "arguments": {"path": "util.js", "end_line": 1}}},
                {"jsonrpc": "2.0", "id": "c", "method": "no/such"}, 5])
        replies = c.next()
        assert isinstance(replies, list) and len(replies) == 4
        by_id = {r["id"]: r for r in replies if r["id"] is not None}
        assert by_id["a"]["result"] == {} and by_id["c"]["error"]["code"] == -32601
        assert by_id["b"]["result"]["structuredContent"]["content"] == "function add(a, b) {"
        assert [r for r in replies if r["id"] is None][0]["error"]["code"] == -32600

        assert tool_error(c.tool("read_code", {"path": "../secret.txt"}))["code"] == "path_outside_root"
        assert c.request("tools/list", {"cursor": "nope"})["error"]["code"] == -32602
        assert c.request("logging/setLevel", {"level": "loud"})["error"]["code"] == -32602
        assert c.request("logging/setLevel", {"level": "debug"})["result"] == {}
        assert c.request("tools/call", {"name": "nope", "arguments": {}})["error"]["code"] == -32602

        # 5 MB on one line: skipped with a clear error that carries its id; the next line is served
        big = json.dumps({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                          "params": {"name": "search_code", "arguments": {"query": "x" * (5 * 1024 * 1024)}}})
        c.write(big.encode() + b"\n")
        reply = c.next()
        assert reply["id"] == 99 and reply["error"]["code"] == -32600 and "MiB limit" in reply["error"]["message"]
        assert c.request("ping")["result"] == {}
    finally:
        assert c.close() == 0


def test_unknown_protocol_version_gets_the_latest(project):
    root, index_dir = project
    c = RawClient(server_argv(str(root), "--index-dir", str(index_dir)))
    try:
        assert c.initialize("1999-01-01")["protocolVersion"] == "2025-11-25"
        c.send([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])  # no batches under 2025-11-25
        assert c.next()["error"]["code"] == -32600
    finally:
        assert c.close() == 0


@pytest.fixture(scope="module")
def slow_project(tmp_path_factory):
    """An index whose embedder sleeps FAULT_DELAY_S per call: a query embedding takes long."""
    tmp = tmp_path_factory.mktemp("slow")
    root = sample_tree(tmp / "repo", files=2)
    index(root, tmp / "index", SLOW, FAULT_DELAY_S="0")
    return root, tmp / "index"


def test_cancel_stops_the_call(slow_project):
    root, index_dir = slow_project
    c = RawClient(server_argv(str(root), "--index-dir", str(index_dir), verbose=True), FAULT_DELAY_S="3")
    try:
        c.initialize()
        c.send({"jsonrpc": "2.0", "id": "slow", "method": "tools/call",
                "params": {"name": "search_code", "arguments": {"query": "scaled value", "mode": "vector"}}})
        c.send({"jsonrpc": "2.0", "id": "waiting", "method": "tools/call",
                "params": {"name": "search_code", "arguments": {"query": "scaled value", "mode": "vector"}}})
        assert c.request("ping")["result"] == {}  # both calls have been read
        for rid in ("slow", "waiting"):
            c.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": rid, "reason": "test"}})
        # both stop at their next check (the waiting one while it waits for the search lock)
        wait_for(lambda: c.stderr_text().count("search_code stopped: cancelled by the client") == 2, 30,
                 "both cancelled calls to stop")
        r = c.tool("search_code", {"query": "scaled", "mode": "text"})
        assert not r["isError"] and r["structuredContent"]["hits"]
        assert c.request("ping")["result"] == {}
    finally:
        assert c.close() == 0
    answered = {m.get("id") for m in c.seen if isinstance(m, dict)}
    assert not {"slow", "waiting"} & answered  # a cancelled call gets no reply


def test_cancel_through_the_python_sdk(slow_project, tmp_path):
    """The SDK's own cancellation (a cancelled scope sends notifications/cancelled) stops the call."""
    root, index_dir = slow_project
    log_file = tmp_path / "server.log"
    argv = server_argv(str(root), "--index-dir", str(index_dir), verbose=True)
    params = StdioServerParameters(command="/bin/sh", args=["-c", f'exec "$0" "$@" 2>>"{log_file}"', *argv],
                                   env=env(FAULT_DELAY_S="3"))

    async def main():
        with anyio.fail_after(120):
            async with Client(params, mode="legacy") as client:
                with anyio.move_on_after(1.0) as scope:
                    await client.call_tool("search_code", {"query": "scaled value", "mode": "vector"})
                assert scope.cancelled_caught
                await anyio.to_thread.run_sync(lambda: wait_for(
                    lambda: "search_code stopped: cancelled by the client" in log_file.read_text(), 30,
                    "the cancelled call to stop"))
                r = await _call(client, "search_code", {"query": "scaled", "mode": "text"})
                assert not r.is_error and r.structured_content["hits"]

    anyio.run(main)


# ----------------------------------------------------------------------------- lifecycle

def _more_files(root: Path, n: int) -> None:
    for i in range(n):
        body = "\n".join(f"def extra_{i}_{j}(x):\n    '''Extra {j}.'''\n    return x * {j} + {i}\n"
                         for j in range(10))
        (root / f"extra_{i:02d}.py").write_text(body + "\n")


@pytest.mark.parametrize("stop,full", [
    ("eof", False), ("sigterm", False), ("sdk_close", False),
    ("eof", True), ("sigterm", True),
])
def test_stop_mid_reindex_keeps_the_index(tmp_path, stop, full):
    """EOF, SIGTERM, or a client closing the way the SDKs do (EOF, 2 s, SIGTERM, 2 s, SIGKILL)
    while a reindex job runs: the job is stopped through the pipeline's shutdown path, no
    process is left behind, and the index keeps every row it had."""
    cs = Codesift(tmp_path)
    sample_tree(cs.root, files=4)
    index(cs.root, cs.index_dir, SLOW, FAULT_DELAY_S="0")
    before = cs.rows()
    assert before
    _more_files(cs.root, 30)
    if stop == "sdk_close":
        pid = _reindex_then_close_with_the_sdk(cs, full)
    else:
        pid = _reindex_then_stop_raw(cs, full, stop)
    # the job was stopped, not orphaned (the SDK may SIGKILL the server before it reaps it)
    wait_for(lambda: not _alive(pid), 20, f"the job (pid {pid}) to be gone")
    after = cs.rows()
    assert set(before) <= set(after), f"{len(set(before) - set(after))} of {len(before)} rows lost"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _job_running(tool) -> dict:
    """Poll job_status until the job reports progress (while it still runs)."""
    job_id = tool("reindex")["job_id"]

    def running():
        st = tool("job_status", {"job_id": job_id})
        assert st["state"] == "running", st  # still running when we stop it
        return (st["progress"] or {}).get("files_seen") is not None and st
    return wait_for(running, 60, "the job to report progress", interval=0.1)


def _reindex_then_stop_raw(cs: Codesift, full: bool, stop: str) -> int:
    c = RawClient(server_argv(str(cs.root), "--index-dir", str(cs.index_dir)), FAULT_DELAY_S="0.5")
    try:
        c.initialize()
        st = _job_running(lambda name, args=None: c.tool(name, {"full": full} if name == "reindex" else args)[
            "structuredContent"])
        if stop == "eof":
            c.proc.stdin.close()
        else:
            c.proc.send_signal(signal.SIGTERM)
        assert c.proc.wait(timeout=60) == 0
    finally:
        c.close()
    assert not _alive(st["pid"])  # the server reaped its job before it exited
    return st["pid"]


def _reindex_then_close_with_the_sdk(cs: Codesift, full: bool) -> int:
    params = _params(str(cs.root), "--index-dir", str(cs.index_dir), FAULT_DELAY_S="0.5")
    box = {}

    async def main():
        with anyio.fail_after(120):
            async with Client(params, mode="legacy") as client:
                async def tool(name, args=None):
                    return (await _call(client, name, {"full": full} if name == "reindex" else args)) \
                        .structured_content
                job_id = (await tool("reindex"))["job_id"]
                with anyio.fail_after(60):
                    while True:
                        st = await tool("job_status", {"job_id": job_id})
                        assert st["state"] == "running", st
                        if (st["progress"] or {}).get("files_seen") is not None:
                            break
                        await anyio.sleep(0.1)
                box["pid"] = st["pid"]

    anyio.run(main)
    return box["pid"]


# ----------------------------------------------------------------------------- HTTP

HTTP_HOST = "127.0.0.2"  # a loopback address other than the default


def _post(host: str, port: int, headers: dict) -> int:
    import http.client

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                  "clientInfo": {"name": "raw", "version": "1"}}})
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest("POST", "/mcp", skip_host=True)
        for k, v in {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                     "Content-Length": str(len(body.encode())), **headers}.items():
            conn.putheader(k, v)
        conn.endheaders(body.encode())
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_http_checks_origin_and_host_on_any_address(project):
    from mcp_clients.project import free_port, wait_port

    root, index_dir = project
    port = free_port(HTTP_HOST)
    proc = subprocess.Popen(server_argv(str(root), "--index-dir", str(index_dir), "--transport", "http",
                                        "--host", HTTP_HOST, "--port", str(port),
                                        "--allow-origin", "https://trusted.example",
                                        "--allow-host", "codesift.internal:*"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    try:
        wait_port(HTTP_HOST, port, proc)
        own = f"{HTTP_HOST}:{port}"
        assert _post(HTTP_HOST, port, {"Host": own}) == 200
        assert _post(HTTP_HOST, port, {"Host": own, "Origin": f"http://{own}"}) == 200
        assert _post(HTTP_HOST, port, {"Host": own, "Origin": "https://trusted.example"}) == 200
        assert _post(HTTP_HOST, port, {"Host": own, "Origin": "http://evil.example"}) == 403
        assert _post(HTTP_HOST, port, {"Host": own, "Origin": "null"}) == 403
        assert _post(HTTP_HOST, port, {"Host": f"evil.example:{port}"}) == 421
        assert _post(HTTP_HOST, port, {"Host": f"codesift.internal:{port}"}) == 200
        assert _post(HTTP_HOST, port, {"Host": f"localhost:{port}"}) == 200  # a loopback alias
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, err
    assert b"not a loopback address" not in err


def test_allowed_hosts_for_each_bind_address():
    from codesift.interfaces.mcp.http import is_loopback, security_lists

    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    hosts, origins = security_lists("192.168.1.5", 8765, ["ci.example:*"], [])
    assert hosts == ["192.168.1.5:8765", "ci.example:*"] and origins == ["http://192.168.1.5:8765"]
    hosts, _ = security_lists("::1", 9000, [], [])
    assert "[::1]:9000" in hosts and "localhost:9000" in hosts
