"""openai:MODEL@URL against a real HTTP server on 127.0.0.1, with injected faults.

Every fault test asserts the exit code, the message, a bounded time, that the stored
rows and vectors equal a clean run's (nothing dropped, nothing wrong stored, or after a
failure: nothing but complete files) and that a resumed run is exact. The API key never
appears in any output or in any file under the index directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from support.fake_embedding_server import FakeEmbeddingServer
from support.harness import Codesift, sample_tree

KEY = "sk-test-0123456789-secret-key-value"
FILES = 2
# Small chunks and batches: a run makes several requests, so faults land mid-run.
COMMON = ("--embed-max-tokens", "64", "--batch-size", "4", "--backoff", "0.05")


@pytest.fixture(scope="module")
def server():
    with FakeEmbeddingServer(expected_key=KEY) as s:
        yield s


@pytest.fixture
def srv(server):
    server.reset()
    if server._server is None:
        server.start()
    yield server
    server.reset()


def spec(s: FakeEmbeddingServer, model: str = "fake-embed") -> str:
    return f"openai:{model}@{s.url}"


def table(index_dir: Path) -> list[tuple]:
    """Every stored row with its vector: (path, start, end, content, vector)."""
    from codesift.store.chunks import ChunkStore

    t = ChunkStore(index_dir / "lancedb").scan(["path", "start_line", "end_line", "content", "vector"])
    cols = [t.column(c).to_pylist() for c in ("path", "start_line", "end_line", "content", "vector")]
    return sorted((p, s, e, c, tuple(v)) for p, s, e, c, v in zip(*cols))


def run(cs: Codesift, s: FakeEmbeddingServer, *extra: str, timeout: float = 60, model: str = "fake-embed"):
    return cs.index(spec(s, model), *COMMON, *extra, timeout=timeout, OPENAI_API_KEY=KEY)


@pytest.fixture(scope="module")
def clean(server, tmp_path_factory):
    """The rows of a fault-free run over the test tree."""
    cs = Codesift(tmp_path_factory.mktemp("clean"))
    sample_tree(cs.root, files=FILES)
    server.reset()
    r = run(cs, server)
    assert r.code == 0, r.stderr
    rows = table(cs.index_dir)
    assert len(rows) >= 8 and server.requests >= 4, (len(rows), server.requests)
    return rows


def assert_no_key(cs: Codesift, *runs) -> None:
    for r in runs:
        assert KEY not in r.stdout and KEY not in r.stderr
    for path in cs.index_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"


def assert_complete_files_only(cs: Codesift, clean_rows: list[tuple]) -> None:
    """After a failure: every stored row is a clean row, and every stored file is complete."""
    rows = table(cs.index_dir)
    assert set(rows) <= set(clean_rows)
    by_path = {}
    for row in clean_rows:
        by_path.setdefault(row[0], []).append(row)
    for path in {r[0] for r in rows}:
        assert sorted(r for r in rows if r[0] == path) == sorted(by_path[path]), path


def test_clean_run_stores_server_vectors_and_searches(cs, srv, clean):
    sample_tree(cs.root, files=FILES)
    r = run(cs, srv)
    assert r.code == 0, r.stderr
    assert table(cs.index_dir) == clean
    assert srv.auth_seen == {f"Bearer {KEY}"}
    s = cs.run(cs.argv("search", "function scaled value", "--root", str(cs.root), "--index-dir",
                       str(cs.index_dir), "--mode", "vector", "-k", "3", "--json"), env=cs.env(OPENAI_API_KEY=KEY))
    assert s.code == 0, s.stderr
    assert "mod_0" in s.stdout
    assert_no_key(cs, r, s)


def test_another_server_or_model_is_refused_without_full(cs, srv, clean):
    sample_tree(cs.root, files=FILES)
    assert run(cs, srv).code == 0
    (cs.root / "mod_00.py").write_text("def changed():\n    return 1\n")
    r = run(cs, srv, model="other-model")
    assert r.code != 0 and "openai:other-model@" + srv.host in r.stderr and "--full" in r.stderr, r.stderr
    with FakeEmbeddingServer(expected_key=KEY, dim=16) as other:
        r2 = cs.index(spec(other), *COMMON, OPENAI_API_KEY=KEY)
        assert r2.code != 0 and other.host in r2.stderr and "--full" in r2.stderr, r2.stderr
        r3 = cs.index(spec(other), *COMMON, "--full", OPENAI_API_KEY=KEY)
        assert r3.code == 0, r3.stderr
        assert {len(row[4]) for row in table(cs.index_dir)} == {16}
    assert_no_key(cs, r, r2, r3)


def test_http_faults_are_retried_429_honours_retry_after(cs, srv, clean):
    sample_tree(cs.root, files=FILES)
    srv.fault("500", times=2, after=2)  # after the probe and one good batch
    srv.fault("503", after=1)
    srv.fault("drop", after=1)
    srv.fault("429", after=1, retry_after=2)
    r = run(cs, srv, "--retries", "4")
    assert r.code == 0, r.stderr
    assert r.summary["retries"] == 5
    # The backoff alone is at most 0.05 s a retry: the run waited for the server's 2 s.
    assert r.summary["duration_s"] >= 2.0
    assert r.seconds < 60
    assert table(cs.index_dir) == clean
    assert_no_key(cs, r)


def test_garbage_answers_are_retried_and_never_stored(cs, srv, clean):
    sample_tree(cs.root, files=FILES)
    srv.fault("wrong_dim", after=2)
    for kind in ("wrong_count", "malformed", "nan"):
        srv.fault(kind, after=1)
    r = run(cs, srv, "--retries", "2")
    assert r.code == 0, r.stderr
    assert r.summary["retries"] == 4
    assert r.seconds < 60
    assert table(cs.index_dir) == clean


def test_persistent_garbage_fails_with_one_line_then_resume_is_exact(cs, srv, clean):
    sample_tree(cs.root, files=FILES)
    srv.fault("wrong_dim", times=1000, after=3)
    r = run(cs, srv, "--retries", "2")
    assert r.code == 1, r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("codesift: error:")]
    assert len(err) == 1, r.stderr
    assert srv.host in err[0] and "dimension 23, expected 24" in err[0] and "batch" in err[0], err[0]
    assert r.seconds < 45
    assert_complete_files_only(cs, clean)
    srv.reset()
    r2 = run(cs, srv)
    assert r2.code == 0, r2.stderr
    assert table(cs.index_dir) == clean
    assert_no_key(cs, r, r2)


def test_circuit_breaker_names_server_status_and_batch(cs, srv, clean):
    sample_tree(cs.root, files=FILES)
    srv.fault("500", times=1000, after=2)
    r = run(cs, srv, "--retries", "10")
    assert r.code == 1
    err = [line for line in r.stderr.splitlines() if line.startswith("codesift: error:")]
    assert len(err) == 1, r.stderr
    line = err[0]
    assert "circuit breaker opened" in line and srv.host in line and "HTTP 500" in line and "on batch" in line, line
    assert r.seconds < 45
    assert_complete_files_only(cs, clean)


def test_rejected_key_is_not_retried_and_never_shown(cs, srv):
    sample_tree(cs.root, files=FILES)
    r = cs.index(spec(srv), *COMMON, "--api-key-env", "MY_KEY", MY_KEY="sk-wrong-" + KEY)
    assert r.code == 1, r.stderr
    assert "HTTP 401" in r.stderr and "refused" in r.stderr and srv.host in r.stderr
    assert "sk-wrong-" not in r.stderr and KEY not in r.stderr
    assert srv.requests == 1  # the probe: a refused key is not retried
    r2 = cs.index(spec(srv), *COMMON, "--api-key-env", "UNSET_KEY_VAR")
    assert r2.code == 2 and "UNSET_KEY_VAR" in r2.stderr, r2.stderr


def test_hang_past_the_deadline_fails_in_bounded_time_then_resumes(cs, srv, clean):
    sample_tree(cs.root, files=FILES)
    srv.fault("hang", times=1000, after=3)
    r = run(cs, srv, "--embed-timeout", "1", "--retries", "1")
    assert r.code == 1, r.stderr
    assert "did not finish within 1s" in r.stderr and "batch" in r.stderr, r.stderr
    assert r.seconds < 30
    assert_complete_files_only(cs, clean)
    srv.reset()
    srv.release.set()  # let the hung handlers go
    r2 = run(cs, srv)
    assert r2.code == 0, r2.stderr
    assert table(cs.index_dir) == clean


def test_server_killed_mid_run_then_restarted(cs, srv, clean):
    sample_tree(cs.root, files=FILES)
    srv.fault("die", times=1, after=3)
    r = run(cs, srv, "--retries", "2")
    assert srv.down.wait(10)
    assert r.code == 1, r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("codesift: error:")]
    assert len(err) == 1 and srv.host in err[0] and "batch" in err[0], r.stderr
    assert r.seconds < 45
    assert_complete_files_only(cs, clean)
    srv.start()  # the same port
    r2 = run(cs, srv)
    assert r2.code == 0, r2.stderr
    assert table(cs.index_dir) == clean
    assert_no_key(cs, r, r2)


def test_credentials_in_url_are_refused(cs, srv):
    sample_tree(cs.root, files=1)
    r = cs.index(f"openai:m@http://user:{KEY}@127.0.0.1:{srv.port}/v1")
    assert r.code == 2 and "credentials" in r.stderr
    assert KEY not in r.stderr
    assert not any(KEY.encode() in p.read_bytes() for p in cs.index_dir.rglob("*") if p.is_file())


def test_retry_after_parsing_and_spec_options():
    from codesift.embedding.openai_compat import _retry_after
    from codesift.embedding.spec import parse_spec, with_options

    assert _retry_after("3") == 3.0 and _retry_after("garbage") is None and _retry_after(None) is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: at once
    s = with_options("openai:m@http://h:1/v1", key_env="K", query_prefix="q: a&b?", device=None)
    p = parse_spec(s)
    assert p.kind == "openai" and p.body == "m@http://h:1/v1"
    assert p.options == {"key_env": "K", "query_prefix": "q: a&b?"}
    assert os.environ.get("K") is None


def test_python_api_indexes_and_searches_through_the_server(tmp_path, srv, clean, monkeypatch):
    import codesift

    monkeypatch.setenv("CODESIFT_TEST_KEY", KEY)
    root = sample_tree(tmp_path / "repo", files=FILES)
    idx = codesift.open(root, tmp_path / "index")
    result = idx.index(embedder=f"{spec(srv)}?key_env=CODESIFT_TEST_KEY&max_tokens=64", batch_size=4)
    assert result.status == "ok", result.error
    assert table(tmp_path / "index") == clean
    hits = idx.search("function scaled value", k=3, mode="vector")
    assert hits and all(h.path.endswith((".py", ".md", ".js")) for h in hits)
    assert srv.auth_seen == {f"Bearer {KEY}"}


def test_requests_respect_the_server_limits(srv, monkeypatch):
    from codesift.embedding import load_embedder
    from support.fake_embedding_server import vector

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    texts = [f"def f{i}(value): return value * {i}" for i in range(10)]
    emb = load_embedder(f"{spec(srv)}?batch_texts=3")
    srv.reset()
    out = emb.embed(texts)
    assert srv.requests == 4 and srv.max_texts == 3
    assert out.tolist() == [[float(x) for x in np.float32(vector(t))] for t in texts]
    tokens = load_embedder(f"{spec(srv)}?batch_tokens=40")  # ~15 estimated tokens a text
    srv.reset()
    tokens.embed(texts)
    assert srv.max_texts == 2 and srv.requests == 5
    emb.close()
    tokens.close()


def test_a_server_that_is_not_there_fails_at_load_naming_it(monkeypatch):
    import socket

    from codesift.embedding import load_embedder
    from codesift.errors import EmbedderCallError

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EmbedderCallError) as info:
        load_embedder(f"ollama:nomic-embed-text@http://127.0.0.1:{port}/v1")
    assert f"127.0.0.1:{port}" in info.value.one_line() and "connection failed" in info.value.one_line()
    from codesift.embedding.openai_compat import OLLAMA_BASE_URL, _split_model_url
    from codesift.embedding.spec import parse_spec

    assert _split_model_url(parse_spec("ollama:nomic-embed-text:latest"), OLLAMA_BASE_URL) == (
        "nomic-embed-text:latest", "http://127.0.0.1:11434/v1")
