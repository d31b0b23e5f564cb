"""``codesift mcp`` through the clients most people use: the TypeScript SDK (desktop clients
and editors build on it) and the MCP Inspector CLI. Both validate every tool result against
the tool's output schema, error results included.

They are installed, pinned by ``tests/mcp_clients/package-lock.json``, with
``npm ci --prefix tests/mcp_clients`` (``make test`` runs it); these tests then run offline.
A missing ``node`` or a missing install fails the tests: it never skips them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mcp_clients.project import (
    CLIENTS, SLOW, TRAVERSAL, build_project, env, free_port, index, server_argv, wait_port,
)
from support.harness import sample_tree

pytestmark = pytest.mark.timeout(300)

HTTP_HOST = "127.0.0.2"
INSTALL_HINT = "run: npm ci --prefix tests/mcp_clients (make test does)"


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    assert path, "node is not on PATH: the MCP client conformance tests need Node.js >= 20"
    for pkg in ("@modelcontextprotocol/sdk", "@modelcontextprotocol/inspector"):
        assert (CLIENTS / "node_modules" / pkg / "package.json").is_file(), f"{pkg} is not installed; {INSTALL_HINT}"
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return build_project(tmp_path_factory.mktemp("clients"))


@contextlib.contextmanager
def _serve_http(root: Path, index_dir: Path, log: Path, **extra_env: str):
    """``codesift -v mcp --transport http`` on a loopback address other than the default."""
    port = free_port(HTTP_HOST)
    with open(log, "wb") as err:
        proc = subprocess.Popen(server_argv(str(root), "--index-dir", str(index_dir), "--transport", "http",
                                            "--host", HTTP_HOST, "--port", str(port), verbose=True),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env=env(**extra_env))
    try:
        wait_port(HTTP_HOST, port, proc)
        yield f"http://{HTTP_HOST}:{port}/mcp"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, log.read_text()[-2000:]


@pytest.fixture(scope="module")
def http_server(project, tmp_path_factory):
    root, index_dir = project
    with _serve_http(root, index_dir, tmp_path_factory.mktemp("http") / "server.log") as url:
        yield url


def test_typescript_sdk_client(node, project, http_server, tmp_path):
    root, index_dir = project
    slow_root = sample_tree(tmp_path / "slow", files=2)
    index(slow_root, tmp_path / "slow-index", SLOW, FAULT_DELAY_S="0")
    cfg = {"python": sys.executable, "env": env(), "root": str(root), "index_dir": str(index_dir),
           "slow": {"root": str(slow_root), "index_dir": str(tmp_path / "slow-index"),
                    "env": env(FAULT_DELAY_S="3")},
           "traversal": TRAVERSAL, "http_url": http_server}
    slow_log = tmp_path / "slow-http.log"
    with _serve_http(slow_root, tmp_path / "slow-index", slow_log, FAULT_DELAY_S="3") as slow_url:
        cfg.update(slow_http_url=slow_url, slow_http_log=str(slow_log))
        (tmp_path / "cfg.json").write_text(json.dumps(cfg))
        r = subprocess.run([node, str(CLIENTS / "ts_client.mjs"), str(tmp_path / "cfg.json")], cwd=CLIENTS,
                           capture_output=True, text=True, timeout=280)
    assert r.stdout.strip(), f"no report (exit {r.returncode}); stderr: {r.stderr[-3000:]}"
    results = json.loads(r.stdout.strip().splitlines()[-1])
    failed = [f"{x['name']}: {x['detail']}" for x in results if not x["ok"]]
    assert not failed, "\n".join(failed)
    names = {x["name"] for x in results}
    for scenario in ("list_tools", "search_code", "reindex_and_job_status", "unknown_tool", "five_mb_line",
                     "garbage_then_alive", "cancel_mid_call", "http_tools", "http_cancel_mid_call",
                     "http_foreign_origin_refused"):
        assert scenario in names, f"scenario {scenario} did not run"
    assert r.returncode == 0, r.stderr[-3000:]


def _inspector(node: str, home: Path, target: list[str], *args: str) -> tuple[int, str, str]:
    launcher = CLIENTS / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / \
        "build" / "index.js"
    e = dict(os.environ, HOME=str(home), MCP_CATALOG_PATH=str(home / "catalog.json"))
    r = subprocess.run([node, str(launcher), "--cli", *target, *args], cwd=CLIENTS, capture_output=True,
                       text=True, timeout=90, env=e)
    return r.returncode, r.stdout, r.stderr


def _error_code(stdout: str) -> str:
    result = json.loads(stdout)
    assert result["isError"] is True and "structuredContent" not in result, result
    return json.loads(result["content"][0]["text"])["error"]["code"]


def test_inspector_cli(node, project, http_server, tmp_path):
    root, index_dir = project
    stdio = [*server_argv(str(root), "--index-dir", str(index_dir)),
             "-e", f"PYTHONPATH={env()['PYTHONPATH']}"]
    call = ("--method", "tools/call", "--tool-name")
    good = [
        ("search_code", "query=parse yaml configuration file", "k=3"),
        ("find_similar", "path=mod_00.py", "line=6"),
        ("read_code", "path=pkg/config_loader.py", "end_line=2"),
        ("index_status",),
        ("reindex",),
    ]
    bad = [
        (("search_code", "query=x", "k=0"), "invalid_arguments"),
        (("find_similar", "path=mod_00.py"), "invalid_arguments"),
        (("read_code", f"path={TRAVERSAL[0]}"), "path_outside_root"),
        (("read_code", f"path={TRAVERSAL[3]}"), "path_outside_root"),
        (("index_status", "verbose=true"), "invalid_arguments"),
        (("reindex", "colour=blue"), "invalid_arguments"),
        (("job_status", "job_id=nope"), "unknown_job"),
    ]

    def run_good(spec):
        name, *targs = spec
        argv = [*call, name] + (["--tool-arg", *targs] if targs else [])
        return spec, _inspector(node, tmp_path, stdio, *argv)

    def run_bad(spec):
        (name, *targs), code = spec
        return spec, _inspector(node, tmp_path, stdio, *call, name, "--tool-arg", *targs)

    with ThreadPoolExecutor(2) as pool:
        listed = pool.submit(_inspector, node, tmp_path, stdio, "--method", "tools/list")
        goods = list(pool.map(run_good, good))
        bads = list(pool.map(run_bad, bad))
        over_http = pool.submit(_inspector, node, tmp_path, [http_server], *call, "search_code",
                                "--tool-arg", "query=yaml")
        foreign = pool.submit(_inspector, node, tmp_path, [http_server], "--method", "tools/list",
                              "--header", "Origin: http://evil.example")
    rc, out, err = listed.result()
    assert rc == 0, err
    assert {t["name"] for t in json.loads(out)["tools"]} == {
        "search_code", "find_similar", "read_code", "index_status", "reindex", "job_status"}
    for spec, (rc, out, err) in goods:
        assert rc == 0, (spec, out[-1000:], err[-2000:])
        result = json.loads(out)
        assert not result.get("isError") and result["structuredContent"], (spec, result)
    hits = json.loads(goods[0][1][1])["structuredContent"]
    assert hits["hits"][0]["path"] == "pkg/config_loader.py" and hits["coverage"][0]["complete"]
    for (spec, code), (rc, out, err) in bads:
        assert rc == 5, (spec, rc, out[-1000:], err[-2000:])  # 5: the tool returned isError
        assert _error_code(out) == code, (spec, out)
    rc, out, err = over_http.result()
    assert rc == 0 and json.loads(out)["structuredContent"]["hits"], (rc, out[-1000:], err[-2000:])
    rc, out, err = foreign.result()
    assert rc != 0 and "403" in out + err, (rc, out[-1000:], err[-2000:])
