"""Big indexes: an HNSW graph (ANN) of the query tables' vectors.

Through the Python API, with ``ann_min_rows`` lowered so a small tree counts as big: a
run builds the index once the vectors pass the threshold, keeps it across small edits,
and drops it when the index shrinks below; a search through it finds each chunk's own
text first and finds rows committed after the build (rowids reused included); an
unreadable graph is reported by
``verify``, searches fall back to scoring every vector, and the next run rebuilds it.
The speed and recall targets are in ``benchmarks/ann.py`` (``make bench``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

import codesift
from codesift.search import backends
from codesift.search.engine import open_searcher
from codesift.store import ann

WORDS = ("parse render socket buffer cache token graph route filter stream index record schema query "
         "matrix vector kernel thread signal packet crypto archive image audio layout widget").split()


def tree(root: Path, files: int, seed: int = 0) -> Path:
    """Python files of small functions, each with its own mix of words."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        parts = []
        for j in range(6):
            words = [WORDS[i] for i in rng.choice(len(WORDS), size=6, replace=False)]
            name = "_".join(words[:2]) + f"_{f}_{j}"
            parts.append(f"def {name}(data):\n    '''{' '.join(words)}.'''\n"
                         f"    return [{', '.join(repr(w) for w in words[2:])}]\n")
        (root / f"mod_{f:03d}.py").write_text("\n\n".join(parts))
    return root


def ann_row(index_dir: Path):
    db = sqlite3.connect(index_dir / "manifest.sqlite")
    try:
        return db.execute("SELECT file, rows FROM q_ann").fetchone()
    finally:
        db.close()


def graph_files(index_dir: Path) -> list[str]:
    return sorted(p.name for p in (index_dir / "current").resolve().glob("ann-*"))


@pytest.fixture()
def probing(monkeypatch):
    """Searches take 10 rows from the graph, so a small index goes through it."""
    monkeypatch.setattr(ann, "CANDIDATES", 10)
    monkeypatch.delenv(backends.ANN_ENV, raising=False)


def test_a_run_builds_the_index_past_the_threshold_keeps_it_and_drops_it_below(tmp_path):
    root = tree(tmp_path / "repo", 40)
    idx = codesift.open(root, tmp_path / "index")
    r = idx.index(embedder="hash", ann_min_rows=50)
    assert r.status == "ok", r.summary()
    vectors = r.summary()["chunks"]["total"]
    assert r.summary()["ann"]["action"] == "built" and vectors >= 50
    name, known = ann_row(idx.index_dir)
    assert known == vectors and graph_files(idx.index_dir) == [name]
    assert idx.index(embedder="hash", ann_min_rows=50).summary()["ann"] is None  # nothing changed: nothing done

    (root / "mod_000.py").write_text("def fresh_one():\n    return 1\n")  # a few rows new to it
    s = idx.index(embedder="hash", ann_min_rows=50).summary()
    assert s["ann"]["action"] == "kept" and s["ann"]["stale"] >= 1

    for f in range(1, 35):
        (root / f"mod_{f:03d}.py").unlink()
    s = idx.index(embedder="hash", ann_min_rows=50).summary()
    assert s["ann"]["action"] == "dropped" and ann_row(idx.index_dir) is None
    assert graph_files(idx.index_dir) == []
    assert idx.verify()["consistent"]


def test_a_search_through_the_graph_finds_each_chunks_own_text_first(tmp_path, probing):
    root = tree(tmp_path / "repo", 40)
    idx = codesift.open(root, tmp_path / "index")
    assert idx.index(embedder="hash", ann_min_rows=50).summary()["ann"]["action"] == "built"
    searcher = open_searcher(root, idx.index_dir)
    assert searcher.backend()._ann is not None  # the graph is in use
    db = sqlite3.connect(idx.index_dir / "manifest.sqlite")
    sample = db.execute("SELECT id, content FROM q_chunks ORDER BY rowid LIMIT 30").fetchall()
    db.close()
    first = [searcher.search(content, k=5, mode="vector")[0].id == cid for cid, content in sample]
    # HNSW is approximate: a node can be left poorly linked by a (threaded, so not
    # deterministic) build; with 10 candidates of 80 rows, about one sample in 200 misses
    assert sum(first) >= len(sample) - 3


def test_rows_committed_after_the_build_are_found(tmp_path, probing):
    root = tree(tmp_path / "repo", 40)
    idx = codesift.open(root, tmp_path / "index")
    idx.index(embedder="hash", ann_min_rows=50)
    db = sqlite3.connect(idx.index_dir / "manifest.sqlite")
    newest = db.execute("SELECT path FROM q_chunks ORDER BY rowid DESC LIMIT 1").fetchone()[0]
    db.close()
    (root / newest).unlink()  # the rows with the highest rowids go: the next rows may reuse them
    (root / "late.py").write_text("def quokka_marsupial_census(island):\n    return island.quokkas\n")
    assert idx.index(embedder="hash", ann_min_rows=50).summary()["ann"]["action"] == "kept"
    hits = open_searcher(root, idx.index_dir).search("quokka marsupial census island", k=3, mode="vector")
    assert hits[0].path == "late.py"


def test_an_unreadable_index_is_reported_searches_scan_and_the_next_run_rebuilds(tmp_path, probing):
    root = tree(tmp_path / "repo", 40)
    idx = codesift.open(root, tmp_path / "index")
    idx.index(embedder="hash", ann_min_rows=50)
    want = [h.id for h in open_searcher(root, idx.index_dir).search("socket buffer", k=5, mode="vector")]
    db = sqlite3.connect(idx.index_dir / "manifest.sqlite")
    name = db.execute("SELECT file FROM q_ann").fetchone()[0]
    db.close()
    (idx.index_dir / "current" / name).write_bytes(b"not a graph")

    report = idx.verify()
    assert not report["consistent"]
    assert any("ANN index" in p["reason"] for p in report["query_tables"])
    searcher = open_searcher(root, idx.index_dir)
    got = searcher.search("socket buffer", k=5, mode="vector")
    assert searcher.backend().ann_problem and searcher.backend()._ann is None
    assert len(got) == 5 and set(want) <= {h.id for h in searcher.search("socket buffer", k=50, mode="vector")}

    s = idx.index(embedder="hash", ann_min_rows=50).summary()
    assert s["ann"]["action"] == "built" and idx.verify()["consistent"]
    assert len(graph_files(idx.index_dir)) == 1 and graph_files(idx.index_dir) != [name]


def test_the_exact_scan_and_the_graph_agree_on_most_of_the_top_ten(tmp_path, monkeypatch, probing):
    root = tree(tmp_path / "repo", 60)
    idx = codesift.open(root, tmp_path / "index")
    idx.index(embedder="hash", ann_min_rows=50)
    queries = [" ".join(WORDS[i : i + 3]) for i in range(0, len(WORDS) - 3)]
    through = [[h.id for h in hs] for hs in open_searcher(root, idx.index_dir).search_many(queries, k=10, mode="vector")]
    monkeypatch.setenv(backends.ANN_ENV, "off")
    exact = [[h.id for h in hs] for hs in open_searcher(root, idx.index_dir).search_many(queries, k=10, mode="vector")]
    recall = np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(through, exact)])
    assert recall >= 0.8  # 10 candidates of 120 rows; the benchmark measures the shipped setting


def test_a_filter_is_answered_from_the_graph_not_only_from_fresh_rows(tmp_path, monkeypatch, probing):
    root = tree(tmp_path / "repo", 400)  # 800 rows: more than a search takes from the graph
    (root / "old.js").write_text("function quokkaCensus(island) {\n  return island.quokkas.length;\n}\n")
    idx = codesift.open(root, tmp_path / "index")
    assert idx.index(embedder="hash", ann_min_rows=50).summary()["ann"]["action"] == "built"
    (root / "new.js").write_text("function renderWidget(layout) {\n  return layout.draw();\n}\n")
    assert idx.index(embedder="hash", ann_min_rows=50).summary()["ann"]["action"] == "kept"
    # mostly the Python files' words: the graph's nearest rows are Python, none JavaScript
    queries = ["parse socket buffer island", "cache token graph quokkas", "query schema index census"]

    def top(ann_env: str | None):
        if ann_env:
            monkeypatch.setenv(backends.ANN_ENV, ann_env)
        else:
            monkeypatch.delenv(backends.ANN_ENV, raising=False)
        s = open_searcher(root, idx.index_dir)
        assert (s.backend()._ann is None) == bool(ann_env)
        return [[h.path for h in s.search(q, k=1, mode="vector", lang=["javascript"])] for q in queries]

    assert top("off") == [["old.js"]] * 3
    assert top(None) == top("off")  # the graph's answers with the filter are the exact scan's


def test_a_graph_that_cannot_be_built_leaves_the_run_ok_and_says_why(tmp_path, monkeypatch):
    root = tree(tmp_path / "repo", 40)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ann, "build_file", broken)
    idx = codesift.open(root, tmp_path / "index")
    r = idx.index(embedder="hash", ann_min_rows=50)
    assert r.status == "ok" and r.summary()["ann"]["action"] == "failed"
    assert "No space left" in r.summary()["ann"]["reason"]
    assert ann_row(idx.index_dir) is None and graph_files(idx.index_dir) == []
    assert idx.verify()["consistent"] and idx.search("socket buffer", k=3)
    monkeypatch.undo()
    assert idx.index(embedder="hash", ann_min_rows=50).summary()["ann"]["action"] == "built"  # the next run
