"""The light query path: the manifest's query tables answer searches without LanceDB.

Checked through the CLI and the Python API: a search in a new process imports neither
LanceDB nor pyarrow; both backends return the same results; the tables follow every
edit, deletion and interrupted run exactly (``verify`` compares them with the chunk
table); an index written before the tables existed is searched through LanceDB until
its next run copies them; a damaged copy is reported and never trusted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support.harness import FAULTS, Codesift, sample_tree, wait_for

import codesift
from codesift.search import backends
from codesift.search.engine import open_searcher

QUERIES = ["scaled value total", "function_3_4", "add two numbers", "Usage", "CONSTANT_7 value"]


@pytest.fixture()
def cs(tmp_path) -> Codesift:
    c = Codesift(tmp_path)
    sample_tree(c.root)
    r = c.index()
    assert r.code == 0, r.stderr
    return c


def query_rows(cs: Codesift, *, pending: bool | None = False) -> list[tuple]:
    """Rows of the query tables: vouched (default), the fast tier's (pending=True) or all."""
    where = "" if pending is None else f" WHERE pending = {int(pending)}"
    db = sqlite3.connect(cs.index_dir / "manifest.sqlite")
    try:
        return sorted(db.execute("SELECT id, path, start_line, end_line, content FROM q_chunks" + where).fetchall())
    finally:
        db.close()


def recorded(cs: Codesift, path: str) -> bool:
    db = sqlite3.connect(cs.index_dir / "manifest.sqlite")
    try:
        return db.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone() is not None
    finally:
        db.close()


def results(cs: Codesift, monkeypatch, backend: str | None, queries=QUERIES, **filters) -> dict:
    if backend:
        monkeypatch.setenv(backends.BACKEND_ENV, backend)
    else:
        monkeypatch.delenv(backends.BACKEND_ENV, raising=False)
    searcher = open_searcher(cs.root, cs.index_dir)
    out = {}
    for mode in ("vector", "text", "hybrid"):
        out[mode] = [[h.id for h in searcher.search(q, k=10, mode=mode, **filters)] for q in queries]
    out["backend"] = searcher.backend().name
    return out


def test_a_search_in_a_new_process_imports_neither_lancedb_nor_pyarrow(cs):
    code = ("import sys, codesift\n"
            f"hits = codesift.open({str(cs.root)!r}, {str(cs.index_dir)!r}).search('scaled value', k=3)\n"
            "print(len(hits), 'lancedb' in sys.modules, 'pyarrow' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=cs.env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["3", "False", "False"]
    r = cs.run(cs.argv("search", "scaled value", "--root", str(cs.root), "--index-dir", str(cs.index_dir),
                       "--json", "-k", "3"))
    assert r.code == 0 and len(json.loads(r.stdout)) == 3


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> Codesift:
    """An index of real code (this package's search and store modules): distinct texts, so
    the two backends' orders can be compared without ties deciding them."""
    c = Codesift(tmp_path_factory.mktemp("code"))
    src = Path(codesift.__file__).parent
    for part in ("search", "store"):
        shutil.copytree(src / part, c.root / part, ignore=shutil.ignore_patterns("__pycache__"))
    r = c.index()
    assert r.code == 0, r.stderr
    return c


CODE_QUERIES = ["rank candidates by signals", "Searcher", "glob_to_regex", "how are path filters applied",
                "FTS index rebuild", "definition tier of a symbol", "swap the current generation",
                "journal of paths being written"]


@pytest.mark.parametrize("filters", [{}, {"lang": "python"}, {"path": "search/**"}, {"path": "store/*.py"}])
def test_both_backends_return_the_same_results(code, monkeypatch, filters):
    tables = results(code, monkeypatch, None, CODE_QUERIES, **filters)
    lance = results(code, monkeypatch, "lance", CODE_QUERIES, **filters)
    assert tables.pop("backend") == "tables" and lance.pop("backend") == "lance"
    # float16 vectors: the same neighbours, in the same order up to near-ties
    for a, b in zip(tables["vector"], lance["vector"]):
        assert a[:1] == b[:1] and len(set(a) & set(b)) >= len(b) - 1
    # BM25's details differ (Porter against Snowball stemming, idf): close, not equal
    overlap = [len(set(a) & set(b)) / len(b) if b else float(not a) for a, b in zip(tables["text"], lance["text"])]
    assert sum(overlap) / len(overlap) >= 0.7, overlap
    same_top = sum(a[:1] == b[:1] for a, b in zip(tables["hybrid"], lance["hybrid"]))
    assert same_top >= len(CODE_QUERIES) - 1, (tables["hybrid"], lance["hybrid"])
    if filters:
        hits = open_searcher(code.root, code.index_dir).search("rank candidates", k=10, **filters)
        assert hits and all(h.language == "python" and h.path.startswith(filters.get("path", "")[:5])
                            for h in hits)


def test_the_tables_follow_edits_deletions_and_new_files(cs, monkeypatch):
    assert query_rows(cs) == cs.rows()
    index = codesift.open(cs.root, cs.index_dir)
    assert index.search("function_3_4", k=1)[0].path == "mod_03.py"
    (cs.root / "mod_03.py").unlink()
    (cs.root / "mod_05.py").write_text("def renamed_helper(value):\n    return value * 99\n")
    (cs.root / "extra.py").write_text("def brand_new_function():\n    return 'fresh'\n")
    r = cs.index()
    assert r.code == 0, r.stderr
    assert query_rows(cs) == cs.rows()
    code, report = cs.verify()
    assert code == 0 and report["consistent"], report
    # the same Index object sees the new rows: a warm searcher reloads after a commit
    assert index.search("brand_new_function", k=1)[0].path == "extra.py"
    assert all(h.path != "mod_03.py" for h in index.search("function_3_4", k=10))


@pytest.mark.parametrize("seed", [7, 8])
def test_sigkill_while_vectors_stream_then_resume_matches_a_clean_run(cs, seed):
    for p in cs.root.glob("mod_*.py"):
        p.write_text(p.read_text() + "\n# edited\n")
    r = cs.index(FAULTS + "kill_at_random", "--batch-size", "4", FAULT_SEED=str(seed), FAULT_WINDOW_S="2.0")
    assert r.code in (0, -signal.SIGKILL)
    # whatever instant the kill came at, the copy holds no row the chunk table lacks (the
    # fast tier's rows aside: a killed run leaves them until the next run starts)
    vouched = {rid for rid, path, *_ in query_rows(cs)}
    assert vouched <= {row[0] for row in cs.rows()}
    r = cs.index()
    assert r.code == 0, r.stderr
    assert query_rows(cs, pending=None) == cs.rows() == cs.clean_rows()
    code, report = cs.verify()
    assert code == 0, report


def test_an_index_without_query_tables_is_searched_through_lancedb_until_its_next_run(cs, monkeypatch):
    db = sqlite3.connect(cs.index_dir / "manifest.sqlite")
    db.execute("DELETE FROM meta WHERE key = 'query_tables'")
    for table in ("q_text", "q_vectors", "q_names", "q_chunks"):
        db.execute(f"DELETE FROM {table}")
    db.commit()
    db.close()
    before = results(cs, monkeypatch, None)
    assert before.pop("backend") == "lance" and before["text"][1]
    r = cs.index()  # nothing changed in the tree: the run only copies the table
    assert r.code == 0, r.stderr
    assert r.summary["files"]["indexed"] == 0
    assert query_rows(cs) == cs.rows()
    after = results(cs, monkeypatch, None)
    assert after.pop("backend") == "tables"
    assert [a[:1] for a in after["hybrid"]] == [b[:1] for b in before["hybrid"]]


def test_a_damaged_copy_is_reported_by_verify_and_never_trusted(cs, monkeypatch, caplog):
    db = sqlite3.connect(cs.index_dir / "manifest.sqlite")
    db.execute("UPDATE q_vectors SET vector = x'0000' WHERE chunk IN (SELECT rowid FROM q_chunks "
               "WHERE path = 'util.js')")
    db.execute("DELETE FROM q_chunks WHERE path = 'mod_01.py'")
    db.commit()
    db.close()
    code, report = cs.verify()
    assert code != 0 and not report["consistent"]
    assert {e["path"] for e in report["query_tables"]} == {"util.js", "mod_01.py"}
    out = results(cs, monkeypatch, None)
    assert out["backend"] == "lance"  # the wrong-size vectors made the copy unusable
    assert "searching the chunk table instead" in caplog.text
    r = cs.index(FAULTS + "clean", "--full")
    assert r.code == 0, r.stderr
    code, report = cs.verify()
    assert code == 0, report
    assert query_rows(cs) == cs.rows()


# --- the fast tier: new files are searchable before their vectors ---------------------------

def _new_files(cs: Codesift, n: int = 8) -> list[str]:
    for i in range(n):
        (cs.root / f"feature_{i}.py").write_text(
            f'def brand_new_feature_{i}(order):\n    """Apply discount {i} to an order."""\n'
            f"    return order.total * {i}\n")
    return [f"feature_{i}.py" for i in range(n)]


def test_new_files_are_found_by_text_and_name_before_their_vectors(cs):
    paths = _new_files(cs)
    # a slow embedder: each call takes 0.4 s, two chunks per call
    proc = cs.popen(FAULTS + "slow", "--batch-size", "2", FAULT_DELAY_S="0.4")
    try:
        last = paths[-1]

        def served_early():
            if recorded(cs, last):
                return None  # vouched already: too late to tell; the wait fails at its deadline
            searcher = open_searcher(cs.root, cs.index_dir)
            hits = searcher.search("brand_new_feature_7", k=3)
            return (hits, searcher.coverage()) if hits and hits[0].path == last else None

        hits, coverage = wait_for(served_early, 60, "the fast tier serving a file not yet vouched for")
        assert hits[0].symbol == "brand_new_feature_7" and not recorded(cs, last)
        assert coverage["vectors"] < coverage["chunks"]
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["lexical"]["files"] == len(paths) and summary["lexical"]["chunks"] >= len(paths)
    assert summary["lexical"]["first_s"] <= summary["lexical"]["done_s"] < summary["duration_s"]
    assert query_rows(cs, pending=True) == []  # every one replaced by its vouched rows
    assert query_rows(cs) == cs.rows() == cs.clean_rows()
    code, report = cs.verify()
    assert code == 0, report


def test_an_interrupted_run_leaves_no_fast_tier_rows_and_the_next_run_completes(cs):
    _new_files(cs)
    proc = cs.popen(FAULTS + "slow", "--batch-size", "1", FAULT_DELAY_S="0.5")
    try:
        wait_for(lambda: query_rows(cs, pending=True), 60, "the fast tier's first rows")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert query_rows(cs, pending=True) == []
    assert query_rows(cs) == cs.rows()
    r = cs.index()
    assert r.code == 0, r.stderr
    assert query_rows(cs, pending=None) == cs.rows() == cs.clean_rows()


def test_a_run_without_new_files_does_not_start_the_fast_tier(cs):
    (cs.root / "mod_02.py").write_text("def changed_function(value):\n    return value\n")
    r = cs.index()
    assert r.code == 0, r.stderr
    assert r.summary["lexical"] == {"files": 0, "chunks": 0, "first_s": None, "done_s": None}


def test_a_failing_fast_tier_fails_the_run_at_once_and_the_next_run_completes(tmp_path, monkeypatch):
    """The pipeline's reader waits for the fast tier (a head start); when the fast tier
    fails during that wait, the run must fail then, not hang until a queue deadline."""
    import asyncio
    import time

    from codesift.errors import StageError
    from codesift.pipeline import supervisor

    async def failing_pass(self):
        await asyncio.sleep(0.5)  # the fault: the pass works a while, then fails (e.g. a disk error)
        raise StageError("the fast tier failed (injected)", stage="lexical")

    cs = Codesift(tmp_path)
    sample_tree(cs.root)
    _new_files(cs, 40)
    idx = codesift.open(cs.root, cs.index_dir)
    with monkeypatch.context() as m:
        m.setattr(supervisor.IndexRun, "_lexical_pass", failing_pass)
        t0 = time.monotonic()
        r = idx.index(embedder="hash", deadlines=codesift.Deadlines(queue=120))
        elapsed = time.monotonic() - t0
    assert r.status == "failed" and "fast tier failed (injected)" in r.error.one_line()
    assert elapsed < 60, f"the run waited {elapsed:.1f}s for its queue deadline"
    assert r.live_threads == [] and r.lock_released
    done = idx.index(embedder="hash")
    assert done.status == "ok"
    assert query_rows(cs, pending=None) == cs.rows()
    code, report = cs.verify()
    assert code == 0, report


def _fast_tier_up(cs: Codesift) -> bool:
    """The fast tier's first rows are in (the manifest and its tables may not exist yet)."""
    try:
        return bool(query_rows(cs, pending=True))
    except sqlite3.Error:
        return False


def _killed_during_the_fast_tier(tmp_path) -> Codesift:
    """A first index killed (SIGKILL) while its fast tier's rows are up and no vector is."""
    cs = Codesift(tmp_path)
    sample_tree(cs.root)
    proc = cs.popen(FAULTS + "slow", "--batch-size", "4", FAULT_DELAY_S="30")
    try:
        wait_for(lambda: _fast_tier_up(cs), 60, "the fast tier's rows")
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    return cs


def test_a_kill_while_the_chunk_table_is_created_is_completed_by_the_next_run(tmp_path):
    cs = _killed_during_the_fast_tier(tmp_path)
    # what a kill inside LanceDB's table creation leaves: the table's directory, no committed version
    table_dir = Path(os.path.realpath(cs.index_dir / "lancedb")) / "chunks.lance"
    (table_dir / "_transactions").mkdir(parents=True)
    open_searcher(cs.root, cs.index_dir).search("function_3_4", k=3)  # a reader sees no table, no error
    r = cs.index()
    assert r.code == 0, r.stderr
    assert "creation was interrupted" in r.stderr
    assert query_rows(cs, pending=True) == []
    assert cs.rows() == cs.clean_rows()
    code, report = cs.verify()
    assert code == 0, report


def test_a_chunk_table_without_a_recorded_embedder_is_healed_by_the_next_run(cs):
    """An index whose identity was never recorded (a kill between the table's creation and
    the record, before the record came first) gets it back on the next run that commits."""
    db = sqlite3.connect(cs.index_dir / "manifest.sqlite")
    with db:
        db.execute("DELETE FROM meta WHERE key IN ('embedder', 'dim', 'spec')")
    db.close()
    (cs.root / "mod_02.py").write_text("def freshly_recorded_identity(value):\n    return value\n")
    r = cs.index()
    assert r.code == 0, r.stderr
    meta = dict(sqlite3.connect(cs.index_dir / "manifest.sqlite").execute("SELECT key, value FROM meta"))
    assert meta["spec"] == FAULTS + "clean" and meta["embedder"] and meta["dim"].isdigit()
    hits = open_searcher(cs.root, cs.index_dir).search("freshly recorded identity", k=3)
    assert hits[0].path == "mod_02.py"


def test_a_searcher_opened_before_the_first_vectors_follows_the_index_embedder(tmp_path):
    """A searcher opened on a first run's fast tier (no embedder recorded yet) embeds the
    next query with the embedder the run then records, not a default."""
    cs = Codesift(tmp_path)
    sample_tree(cs.root)
    proc = cs.popen(FAULTS + "slow", "--batch-size", "4", FAULT_DELAY_S="1")
    try:
        wait_for(lambda: _fast_tier_up(cs), 60, "the fast tier's rows")
        idx = codesift.open(cs.root, cs.index_dir)
        wait_for(lambda: idx.search("function_3_4", k=3), 60, "the fast tier answering")
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    hits = idx.search("function_3_4", k=3)  # the same Index, now with vectors
    assert hits[0].path == "mod_03.py"
    meta = dict(sqlite3.connect(cs.index_dir / "manifest.sqlite").execute("SELECT key, value FROM meta"))
    assert idx._searcher.embedder().name == meta["embedder"]


def test_a_backend_opened_after_the_first_vectors_is_searched_with_the_recorded_embedder(tmp_path, monkeypatch):
    """A searcher reads the manifest, then opens its snapshot: a first run may record its
    embedder and commit vectors in between. The query is embedded by the recorded one."""
    cs = Codesift(tmp_path)
    sample_tree(cs.root)
    proc = cs.popen(FAULTS + "slow", "--batch-size", "4", FAULT_DELAY_S="1")
    try:
        wait_for(lambda: _fast_tier_up(cs), 60, "the fast tier's rows")
        searcher = open_searcher(cs.root, cs.index_dir)
        original = backends.TablesBackend.__init__

        def opened_late(self, *args, **kwargs):
            def vouched():
                try:
                    return bool(query_rows(cs))
                except sqlite3.Error:
                    return False
            wait_for(vouched, 60, "the run's first vectors")  # the searcher is paused here
            original(self, *args, **kwargs)

        monkeypatch.setattr(backends.TablesBackend, "__init__", opened_late)
        searcher.search("function_3_4", k=3, mode="vector")  # no embedder mismatch
        monkeypatch.undo()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert searcher.search("function_3_4", k=3)[0].path == "mod_03.py"


def test_a_first_index_is_searchable_before_its_first_vector(tmp_path):
    cs = Codesift(tmp_path)
    sample_tree(cs.root)
    _new_files(cs)
    # every embed call hangs for a while: no vector is committed for seconds
    proc = cs.popen(FAULTS + "slow", "--batch-size", "4", FAULT_DELAY_S="3")
    try:
        def served():
            if not (cs.index_dir / "manifest.sqlite").exists():
                return None
            searcher = open_searcher(cs.root, cs.index_dir)
            hits = searcher.search("brand_new_feature_3", k=3)
            return (hits, searcher.coverage()) if hits else None

        hits, coverage = wait_for(served, 60, "a hit from the fast tier of a first index")
        assert hits[0].path == "feature_3.py" and hits[0].symbol == "brand_new_feature_3"
        assert coverage["vectors"] == 0 < coverage["chunks"]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert query_rows(cs, pending=True) == []


def test_the_copy_from_the_chunk_table_runs_in_bounded_batches(cs, monkeypatch):
    from codesift.pipeline import supervisor

    db = sqlite3.connect(cs.index_dir / "manifest.sqlite")
    db.execute("DELETE FROM meta WHERE key = 'query_tables'")
    db.commit()
    db.close()
    calls = []
    real = supervisor._copy_next

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(supervisor, "QUERY_COPY_BATCH", 7)
    monkeypatch.setattr(supervisor, "_copy_next", counting)
    result = codesift.open(cs.root, cs.index_dir).index(embedder=FAULTS + "clean")
    assert result.exit_code == 0, result.error
    rows = cs.rows()
    assert len(calls) == -(-len(rows) // 7) + 1  # one writer call per batch, then the end of the scan
    assert query_rows(cs) == rows
    code, report = cs.verify()
    assert code == 0, report


def test_a_commit_stores_every_value_of_its_rows_exactly(tmp_path):
    """A commit writes each table's rows as one statement over a JSON array: every value comes
    back as it went in (quotes, backslashes, newlines, other scripts, JSON-looking text,
    numbers in text, no symbol), and each vector's bytes with its own row."""
    import numpy as np

    from codesift.store.manifest import STATUS_INDEXED, FileRecord, Manifest
    from codesift.store.query_tables import QueryRows

    awkward = ['say "hi" \\ then\nleave', "naïve 日本語 ✓", '[1, 2, {"a": null}]', "123", "", "tab\there"]
    chunks, texts = [], []
    rng = np.random.default_rng(0)
    for i, content in enumerate(awkward):
        vec = rng.standard_normal(8).astype(np.float16).tobytes()
        symbol = None if i % 2 else f"Thing{i}.run"
        chunks.append((f"id-{i}", f"src/f{i % 2}.py", "python", symbol, "function", i + 1, i + 3, content, vec))
        texts.append((f"thing {i} run {content}", f"id-{i}"))
    m = Manifest(tmp_path / "manifest.sqlite")
    try:
        records = [FileRecord(p, 1, 1, "h", 3, STATUS_INDEXED, None, "python", 0.0) for p in ("src/f0.py", "src/f1.py")]
        m.commit_files(records, replaced=["src/f0.py", "src/f1.py"], rows=QueryRows(chunks, texts))
        m.commit_files(records, replaced=["src/f0.py", "src/f1.py"], rows=QueryRows(chunks, texts))  # replaced
    finally:
        m.close()
    db = sqlite3.connect(tmp_path / "manifest.sqlite")
    try:
        got = db.execute("SELECT c.id, c.path, c.language, c.symbol, c.kind, c.start_line, c.end_line, c.content, "
                         "v.vector FROM q_chunks c JOIN q_vectors v ON v.chunk = c.rowid ORDER BY c.id").fetchall()
        text = dict(db.execute("SELECT c.id, t.search_text FROM q_text t JOIN q_chunks c ON c.rowid = t.rowid"))
        names = db.execute("SELECT n.name, c.id FROM q_names n JOIN q_chunks c ON c.rowid = n.chunk "
                           "ORDER BY c.id").fetchall()
    finally:
        db.close()
    assert got == sorted(chunks)
    assert text == {rid: t for t, rid in texts}
    assert names == [("run", f"id-{i}") for i in (0, 2, 4)]  # a qualified symbol defines its last name
