"""The Ray engine through the public CLI (``codesift index --engine ray``).

Every CLI run starts its own local Ray (seconds on a small machine), so the runs are
few and shared: one module-scoped clean run with several assertions on it, one failing
run, one killed run, one run with the real model. Each CLI process gets its own session
(``start_new_session``); the finaliser SIGKILLs whatever is left in those sessions (a
killed driver leaves Ray agents behind), so no Ray process outlives the tests and no
other Ray on the machine is touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.harness import FAULTS, Codesift, live_status, sample_tree, wait_for

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'codesift[ray]'")

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

RAY_RUN_TIMEOUT = 180  # seconds for one CLI run that starts Ray (start-up alone is ~7-15 s on 2 cores)


# ----------------------------------------------------------------- process hygiene
_SESSIONS: list[int] = []


def _session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def _kill_session(sid: int, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process of a session we started; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = _session_pids(sid)
        if not left or time.monotonic() > deadline:
            return left
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


@pytest.fixture(scope="module", autouse=True)
def _no_ray_left_behind():
    yield
    stuck = {sid: _kill_session(sid) for sid in _SESSIONS}
    assert not any(stuck.values()), f"processes survived SIGKILL: {stuck}"


def run(cs: Codesift, args: list[str], *, timeout: float = RAY_RUN_TIMEOUT, **env: str):
    """Run the CLI in a new session and remember the session for clean-up."""
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cs.env(**env), start_new_session=True)
    _SESSIONS.append(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, out, err, time.monotonic() - t0


def ray_index(cs: Codesift, embedder: str, *extra: str, timeout: float = RAY_RUN_TIMEOUT, **env: str):
    return run(cs, cs.index_args(embedder, "--engine", "ray", *extra), timeout=timeout, **env)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("codesift: error:")]


def rows_with_vectors(index_dir: Path) -> dict[str, tuple]:
    from codesift.store.chunks import ChunkStore

    t = ChunkStore(index_dir / "lancedb").scan(["id", "path", "start_line", "end_line", "content", "vector"])
    cols = [t.column(c).to_pylist() for c in ("id", "path", "start_line", "end_line", "content", "vector")]
    return {r[0]: r for r in zip(*cols)}


def assert_same_rows(ray_dir: Path, local_dir: Path, *, atol: float | None = None,
                     min_cosine: float | None = None) -> None:
    import numpy as np

    a, b = rows_with_vectors(ray_dir), rows_with_vectors(local_dir)
    assert a and sorted(a) == sorted(b)
    for cid, row in a.items():
        assert row[:5] == b[cid][:5]
        u, v = np.asarray(row[5]), np.asarray(b[cid][5])
        if atol is not None:
            assert np.allclose(u, v, atol=atol), cid
        if min_cosine is not None:
            assert float(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v)) >= min_cosine, cid


# ----------------------------------------------------------------- one clean run, many checks
@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """The sample tree indexed once by each engine with the same (hash-based) embedder."""
    cs = Codesift(tmp_path_factory.mktemp("ray-clean"))
    sample_tree(cs.root)
    code, out, err, seconds = ray_index(cs, FAULTS + "clean")
    local = cs.tmp / "local-index"
    r = cs.run(cs.argv("index", str(cs.root), "--index-dir", str(local), "--embedder", FAULTS + "clean", "--json"))
    assert r.code == 0, r.stderr
    return cs, code, out, err, seconds, local, r.summary


def test_clean_run_succeeds_with_the_local_summary_shape(indexed):
    cs, code, out, err, seconds, _, local_summary = indexed
    assert code == 0, err
    s = json.loads(out)  # stdout is the JSON summary only: Ray's output goes to stderr
    assert s["status"] == "ok" and s["error"] is None
    assert s["files"]["indexed"] == s["files"]["seen"] == 14
    assert s["chunks"]["written"] == s["chunks"]["total"] == local_summary["chunks"]["total"]
    assert {"discover", "read", "embed", "write"} <= set(s["stages"])
    assert s.keys() == local_summary.keys() and s["files"].keys() == local_summary["files"].keys()
    assert not error_lines(err)


def test_rows_equal_the_local_engine(indexed):
    cs, code, *_rest = indexed
    assert code == 0
    local = indexed[5]
    assert cs.rows() == cs.rows(local)  # ids, paths, lines, content
    assert_same_rows(cs.index_dir, local, atol=1e-6)


def test_index_verifies_and_search_works(indexed):
    cs = indexed[0]
    code, report = cs.verify()
    assert code == 0, report
    r = cs.run(cs.argv("search", "value scaled by", "--root", str(cs.root), "--index-dir", str(cs.index_dir),
                       "--json", "-k", "3"))
    assert r.code == 0, r.stderr
    hits = json.loads(r.stdout)
    assert hits and all(h["path"].endswith(".py") for h in hits)


def test_reindex_with_nothing_changed_does_not_start_ray(indexed):
    cs = indexed[0]
    code, out, err, seconds = ray_index(cs, FAULTS + "clean", timeout=60)
    assert code == 0, err
    s = json.loads(out)
    assert s["files"]["unchanged"] == 14 and s["chunks"]["written"] == 0
    assert "Ray" not in err and seconds < 20


def test_notes_and_strict_outcome_equal_the_local_engine(tmp_path):
    """Both engines ask the same chunk policy (the embedder's hard token limit): a line
    longer than the hash embedder's size target is no problem for either, so --strict
    passes for both and the notes, skips and rows are identical."""
    cs = Codesift(tmp_path)
    sample_tree(cs.root, files=2)
    (cs.root / "long_line.txt").write_text(" ".join(f"word{i}" for i in range(3000)) + "\n")
    (cs.root / "latin1.txt").write_bytes(b"caf\xe9 au lait\n")  # undecodable: an error for both
    code, out, err, seconds = ray_index(cs, FAULTS + "clean", "--strict")
    local = cs.tmp / "local-strict"
    r = cs.run(cs.argv("index", str(cs.root), "--index-dir", str(local), "--embedder", FAULTS + "clean",
                       "--json", "--strict"))
    assert code == r.code == 3, (err, r.stderr)  # the undecodable file fails --strict in both
    assert seconds < RAY_RUN_TIMEOUT
    ray_summary = json.loads(out)
    assert ray_summary["files"]["notes"] == r.summary["files"]["notes"] == []
    assert ray_summary["files"]["skipped"] == r.summary["files"]["skipped"]
    assert [line for line in error_lines(err)] == [line for line in error_lines(r.stderr)]
    assert cs.rows() == cs.rows(local)


# ----------------------------------------------------------------- failures
def test_failing_embedder_fails_in_bounded_time_with_one_clear_line(tmp_path):
    cs = Codesift(tmp_path)
    sample_tree(cs.root)
    code, out, err, seconds = ray_index(cs, FAULTS + "raise_always", "--retries", "2", timeout=120)
    assert code == 1, err
    assert seconds < 90
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "embed stage failed" in lines[0] and "batch" in lines[0]
    assert "after 3 attempts" in lines[0] and "embedder is broken (injected)" in lines[0]
    s = json.loads(out)
    assert s["status"] == "failed" and s["error"]["stage"] == "embed" and s["retries"] >= 2
    assert cs.rows() == []  # nothing complete, nothing claimed
    r = cs.index()  # the local engine completes it exactly
    assert r.code == 0, r.stderr
    assert cs.rows() == cs.clean_rows()
    assert cs.verify()[0] == 0


def test_without_ray_the_engine_names_the_extra(cs):
    sample_tree(cs.root, files=1)
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "from codesift.interfaces.cli import main\n"
            f"sys.exit(main(['index', {str(cs.root)!r}, '--index-dir', {str(cs.index_dir)!r}, "
            "'--embedder', 'hash', '--engine', 'ray']))")
    r = cs.run([sys.executable, "-c", code], timeout=60)
    assert r.code in (1, 2), r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "pip install 'codesift[ray]'" in lines[0], r.stderr


def test_killed_driver_resumes_to_exactly_a_clean_run(tmp_path):
    cs = Codesift(tmp_path)
    sample_tree(cs.root, files=60)
    proc = subprocess.Popen(cs.index_args(FAULTS + "slow", "--engine", "ray", "--batch-size", "8"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cs.env(FAULT_DELAY_S="1.0"),
                            start_new_session=True)
    _SESSIONS.append(proc.pid)
    try:
        written = wait_for(lambda: (live_status(cs.index_dir) or {}).get("chunks", {}).get("written", 0), 120,
                           "the first committed chunks")
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert _kill_session(proc.pid) == []  # the Ray processes the driver left behind are gone
    partial = cs.rows()
    clean = cs.clean_rows()
    assert written <= len(partial) < len(clean)
    r = cs.index()  # resume with the local engine: the manifest is shared
    assert r.code == 0, r.stderr
    assert r.summary["files"]["unchanged"] > 0  # committed files were not redone
    assert cs.rows() == clean
    assert cs.verify()[0] == 0


# ----------------------------------------------------------------- the real model
def test_default_model_rows_match_the_local_engine(tmp_path):
    pytest.importorskip("onnxruntime")
    cs = Codesift(tmp_path)
    sample_tree(cs.root, files=3)
    code, out, err, _ = ray_index(cs, "minilm")
    assert code == 0, err
    local = cs.tmp / "local-minilm"
    r = cs.run(cs.argv("index", str(cs.root), "--index-dir", str(local), "--embedder", "minilm", "--json"),
               timeout=RAY_RUN_TIMEOUT)
    assert r.code == 0, r.stderr
    assert json.loads(out)["chunks"]["total"] == r.summary["chunks"]["total"]
    # The int8 MiniLM quantises activations per call, so a vector depends slightly on
    # the other texts in its embed call (the local engine's own batches vary with timing):
    # measured cosine >= 0.99 between a text embedded alone and in a batch of 16.
    assert_same_rows(cs.index_dir, local, min_cosine=0.98)
