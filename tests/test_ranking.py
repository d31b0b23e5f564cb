"""The ranking layer (codesift.search.ranking): each signal changes the order the way it should.

Each signal has a small fixture repository, indexed with the hash embedder (fast,
deterministic), searched through the same ``Searcher`` the CLI, API and MCP server use, once
with every signal and once with that signal switched off (``disabled_signals``, the hidden
``--no-signal`` of the CLI). The tests assert order, never scores. Signals whose effect
depends on score shapes a fixture cannot pin with the hash embedder (fusion weights, file
coherence) are also checked on hand-made candidate lists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import codesift
from codesift.search.engine import open_searcher
from codesift.search.ranking import MIXED, PROSE, SIGNALS, SYMBOL, Candidate, rank, understand
from codesift.search.ranking.evidence import normalize, path_match_ratio
from codesift.search.ranking.priors import path_classes, prior

ALL: frozenset[str] = frozenset()


def _repo(tmp_path: Path, name: str, files: dict[str, str]):
    root = tmp_path / name
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(textwrap.dedent(text).lstrip())
    index_dir = tmp_path / f"{name}.idx"
    codesift.open(root, index_dir).index(embedder="hash")
    return open_searcher(root, index_dir)


def _paths(searcher, query: str, k: int, off: frozenset[str] = ALL) -> list[str]:
    searcher.disabled_signals = off
    try:
        return [h.path for h in searcher.search(query, k=k)]
    finally:
        searcher.disabled_signals = ALL


# ---------------------------------------------------------------- query understanding
def test_query_kinds():
    for q in ("Router", "APIRouter", "parse_config_file", "os.path.join", "Sinatra::Base",
              "ChunkStore.replace_rows()", "__init__"):
        assert understand(q).kind == SYMBOL, q
    assert understand("Sinatra::Base").names == ("Base",)
    for q in ("how are nested dependencies resolved", "websocket endpoint implementation", "session"):
        assert understand(q).kind == PROSE, q
    mixed = understand("how does APIRouter include routers")
    assert mixed.kind == MIXED and mixed.names == ("APIRouter",)
    assert "tests" in understand("tests for the config parser").asks
    assert not understand("config parser").asks


def test_query_kind_weights_follow_the_kind():
    """A symbol lookup trusts the literal (BM25) match over a closer-sounding embedding; prose
    does the opposite. Without the signal both use one weight, and the symbol lookup flips."""
    def cands():
        return [Candidate({"id": "lit", "path": "a/lit.py", "content": ""}, cos=0.20, bm=1.0),
                Candidate({"id": "sem", "path": "b/sem.py", "content": ""}, cos=0.75, bm=0.0)]

    assert [c.row["id"] for c in rank("parse_config_file", cands(), 2)] == ["lit", "sem"]
    assert [c.row["id"] for c in rank("read the settings from disk", cands(), 2)] == ["sem", "lit"]
    assert [c.row["id"] for c in rank("parse_config_file", cands(), 2, frozenset({"query_kind"}))] == ["sem", "lit"]


# ---------------------------------------------------------------- definitions first
def test_defining_chunk_ranks_first_even_when_no_leg_retrieved_it(tmp_path):
    files = {"dispatch/core.py": '''
        class Router:
            """Holds the table of handlers."""

            def __init__(self):
                self.table = {}
        '''}
    for i in range(14):  # many short usages: they outscore the definition in both legs
        files[f"app/view_{i}.py"] = "".join(
            f"def use_{i}_{j}(router: Router) -> Router:\n    return Router(router) or Router()\n\n\n" for j in range(2))
    s = _repo(tmp_path, "defs", files)
    s.candidates = 10
    assert "dispatch/core.py" not in [h.path for h in s.search("Router", k=10, mode="text")]
    assert _paths(s, "Router", 3)[0] == "dispatch/core.py"
    assert "dispatch/core.py" not in _paths(s, "Router", 3, frozenset({"definitions"}))
    # a qualified name finds the same definition
    assert _paths(s, "dispatch.Router", 3)[0] == "dispatch/core.py"


# ---------------------------------------------------------------- priors
PARSER = '''
    def parse_tokens(tokens):
        """Turn a token stream into a syntax tree."""
        tree = []
        for token in tokens:
            tree.append(token)
        return tree
    '''
PARSER_TEST = '''
    from parser import parse_tokens


    def test_parse_tokens_syntax_tree():
        """parse tokens into a syntax tree: parse tokens, syntax tree, tokens tree."""
        tokens = ["parse", "tokens", "syntax", "tree"]
        assert parse_tokens(tokens) == tokens  # parse tokens syntax tree
    '''


def test_test_file_ranks_below_the_implementation_unless_asked_for(tmp_path):
    s = _repo(tmp_path, "priors", {"src/parser.py": PARSER, "tests/test_parser.py": PARSER_TEST,
                                   "src/other.py": "def unrelated():\n    return 1\n"})
    q = "parse tokens into a syntax tree"
    assert _paths(s, q, 2, frozenset({"priors"}))[0] == "tests/test_parser.py"
    assert _paths(s, q, 2)[0] == "src/parser.py"
    assert _paths(s, "tests for parse tokens into a syntax tree", 2)[0] == "tests/test_parser.py"


def test_every_chunk_of_a_file_with_a_generated_banner_ranks_below_implementation(tmp_path):
    """A generator writes its banner once, in the file's first lines; the prior marks the whole
    file, not only the chunk that holds the banner."""
    filler = "\n".join(f"    total += step_{i}(value)" for i in range(60))
    generated = """# Code generated by tablegen. DO NOT EDIT.


def build(value):
    total = 0
""" + filler + """
    return total


def lookup_colour_name(colour_code):
    \"\"\"Look up a colour name by its colour code in the colour table.\"\"\"
    for entry in COLOUR_TABLE:
        if entry.colour_code == colour_code:
            return entry.colour_name
    return None
"""
    implementation = '''
        def colour_for(n):
            """Return the colour name for a number."""
            for entry in COLOUR_TABLE:
                if entry.code == n:
                    return entry.name
            return None
    '''
    s = _repo(tmp_path, "banner", {"gen/colours.py": generated, "src/colours.py": implementation,
                                   "src/other.py": "def unrelated():\n    return 1\n"})
    q = "look up a colour name by its colour code"
    s.disabled_signals = frozenset({"priors"})
    hits = s.search(q, k=3)
    s.disabled_signals = ALL
    assert hits[0].path == "gen/colours.py" and hits[0].start_line > 5  # deep in the file, away from the banner
    assert _paths(s, q, 2)[0] == "src/colours.py"


def test_prior_classes_by_ecosystem_conventions():
    assert "tests" in path_classes("pkg/foo_test.go") and "tests" in path_classes("src/test/java/FooTest.java")
    assert "tests" in path_classes("lib/__tests__/a.ts") and "tests" in path_classes("spec/models/user_spec.rb")
    assert "tests" in path_classes("core/src/commonTest/kotlin/FlowTest.kt")
    assert "examples" in path_classes("examples/server/main.rs")
    assert "docs" in path_classes("docs/guide.md") and "docs" in path_classes("README.rst")
    assert "stub" in path_classes("types/index.d.ts") and "stub" in path_classes("pkg/mod.pyi")
    assert "vendored" in path_classes("vendor/github.com/x/y.go")
    assert "generated" in path_classes("api/service.pb.go") and "generated" in path_classes("dist/app.min.js")
    assert "amalgamation" in path_classes("single_include/json.hpp")
    assert not path_classes("src/router/tree.go") and not path_classes("lib/contest.py")
    assert prior("gen/x.go", "// Code generated by protoc-gen-go. DO NOT EDIT.\npackage x\n", frozenset()) < 1.0
    assert prior("src/app.js", "var a=1;" * 100, frozenset()) < 1.0  # one minified line


# ---------------------------------------------------------------- path evidence
def test_query_words_in_a_file_name_lift_it_including_inflections(tmp_path):
    s = _repo(tmp_path, "paths", {
        "middleware/throttler.go": "package middleware\n\nfunc Limit(n int) func() {\n\treturn nil\n}\n",
        "server/handler.go": ("package server\n\n// throttling of requests: requests are throttled here\n"
                              "func Serve(requests int) int {\n\treturn requests\n}\n"),
    })
    q = "request throttling middleware"
    # topic off in both: with one chunk per file it would only repeat the vector leg's order
    assert _paths(s, q, 2, frozenset({"path", "topic"}))[0] == "server/handler.go"
    assert _paths(s, q, 2, frozenset({"topic"}))[0] == "middleware/throttler.go"


def test_path_words_match_plural_and_inflected_forms():
    words = tuple(normalize(w) for w in ("dependencies", "resolved"))
    assert path_match_ratio("core/dependency_resolver.py", words) == 1.0
    assert path_match_ratio("core/other.py", words) == 0.0


# ---------------------------------------------------------------- distinct files, coherence
def test_other_files_are_not_pushed_out_by_one_file(tmp_path):
    big = "\n\n".join(
        f"def cache_entry_{j}(cache, entry):\n    # cache entry eviction: evict the cache entry\n"
        f"    cache.evict(entry)\n    return cache.entry_{j}\n" for j in range(8))
    s = _repo(tmp_path, "distinct", {
        "store/cache.py": big,
        "store/lru.py": "def evict_oldest(entries):\n    # eviction of a cache entry\n    return entries.pop()\n",
    })
    q = "cache entry eviction"
    assert "store/lru.py" not in _paths(s, q, 3, frozenset({"distinct"}))
    assert "store/lru.py" in _paths(s, q, 3)


def test_a_file_with_several_strong_chunks_lifts_its_best():
    def cands():
        return ([Candidate({"id": "solo", "path": "a/solo.py", "content": ""}, cos=0.60, bm=0.0)]
                + [Candidate({"id": f"m{i}", "path": "b/many.py", "content": ""}, cos=0.58 - i * 0.01, bm=0.0)
                   for i in range(4)])

    q = "how are retries scheduled"
    assert [c.row["id"] for c in rank(q, cands(), 2, frozenset({"coherence"}))][0] == "solo"
    assert [c.row["id"] for c in rank(q, cands(), 2)][0] == "m0"


# ---------------------------------------------------------------- topic: what a whole file is about
def test_a_file_about_the_query_as_a_whole_lifts_its_chunks():
    def cands():
        return [Candidate({"id": "stray", "path": "util/misc.py", "content": ""}, cos=0.62, bm=0.0, file_cos=0.20),
                Candidate({"id": "topical", "path": "net/client.py", "content": ""}, cos=0.60, bm=0.0, file_cos=0.55),
                Candidate({"id": "other", "path": "db/pool.py", "content": ""}, cos=0.40, bm=0.0, file_cos=0.30)]

    q = "how are retries scheduled"
    assert [c.row["id"] for c in rank(q, cands(), 3, frozenset({"topic"}))][0] == "stray"
    assert [c.row["id"] for c in rank(q, cands(), 3)][0] == "topical"
    # a symbol lookup asks for the defining chunk, whatever its file is about
    assert [c.row["id"] for c in rank("RetryPolicy", cands(), 3)][0] == "stray"


def test_each_files_mean_vector_covers_all_its_chunks(tmp_path):
    import numpy as np

    s = _repo(tmp_path, "topic", {
        "net/retry.py": "\n\n".join(f"def retry_{i}(call):\n    # retry the call with backoff\n    return call()\n"
                                     for i in range(6)),
        "util/misc.py": "def retry_once(call):\n    return call()\n\n\ndef format_date(d):\n    return d.isoformat()\n",
    })
    backend = s.backend()
    query = s.embedder().embed(["retry the call with backoff"])[0]
    got = backend.file_cosines(query)
    assert set(got) == {"net/retry.py", "util/misc.py"}
    paths, path_of, _ = backend._row_files()
    for path, cos in got.items():
        rows = backend.matrix[path_of == paths.index(path)]
        mean = rows.sum(axis=0) / np.linalg.norm(rows.sum(axis=0))
        assert abs(cos - float(mean @ (query / np.linalg.norm(query)))) < 1e-5
    assert got["net/retry.py"] > got["util/misc.py"]


# ---------------------------------------------------------------- the CLI's ablation switch
def test_cli_no_signal_switches_a_signal_off_and_rejects_unknown_names(tmp_path):
    s = _repo(tmp_path, "cli", {"src/parser.py": PARSER, "tests/test_parser.py": PARSER_TEST})
    env = dict(os.environ)

    def search(*extra):
        return subprocess.run([sys.executable, "-m", "codesift", "search", "parse tokens into a syntax tree",
                               "--root", str(s.root), "--index-dir", str(s.index_dir), "--json", "-k", "2", *extra],
                              capture_output=True, text=True, timeout=120, env=env)

    on, off = search(), search("--no-signal", "priors")
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    assert json.loads(on.stdout)[0]["path"] == "src/parser.py"
    assert json.loads(off.stdout)[0]["path"] == "tests/test_parser.py"
    bad = search("--no-signal", "nonsense")
    assert bad.returncode != 0 and "unknown ranking signal" in bad.stderr
    assert set(SIGNALS) >= {"definitions", "priors", "path", "topic", "distinct", "coherence", "query_kind"}


def test_empty_candidates_rank_to_nothing():
    assert rank("anything", [], 5) == []


def test_penalties_move_negative_scores_down_too():
    """With only negative cosines (no text match), a test file still ranks below the code."""
    cands = [Candidate({"id": "t", "path": "tests/test_a.py", "content": ""}, cos=-0.10, bm=0.0),
             Candidate({"id": "c", "path": "src/a.py", "content": ""}, cos=-0.12, bm=0.0)]
    assert [c.row["id"] for c in rank("how are retries scheduled", cands, 2)] == ["c", "t"]


def test_a_definition_listed_among_several_in_one_chunk_still_ranks_first(tmp_path):
    # small neighbours share a chunk, whose symbol lists every name it defines ("a, b, c")
    files = {"dispatch/kinds.py": '''
        class Alpha:
            pass


        class Router:
            pass


        class Omega:
            pass
        '''}
    for i in range(14):
        files[f"app/view_{i}.py"] = "".join(
            f"def use_{i}_{j}(router: Router) -> Router:\n    return Router(router) or Router()\n\n\n" for j in range(2))
    s = _repo(tmp_path, "several", files)
    s.candidates = 10
    symbols = {h.symbol for h in s.search("Alpha Router Omega", k=50, mode="text") if h.path == "dispatch/kinds.py"}
    assert any(", " in sym and "Router" in sym.split(", ") for sym in symbols), symbols
    assert _paths(s, "Router", 3)[0] == "dispatch/kinds.py"


def test_a_failed_read_of_file_heads_caches_nothing(tmp_path):
    """A read of the files' heads that fails is reported, and the next one reads them again:
    a banner is not forgotten because one read broke off."""
    import sqlite3

    import pytest

    from codesift.search.backends import QueryTablesError

    s = _repo(tmp_path, "heads", {"gen/table.py": "# Code generated by tablegen. DO NOT EDIT.\nX = 1\n",
                                  "src/main.py": "def main():\n    return 1\n"})
    backend = s.backend()
    real = backend.db

    class Broken:
        def execute(self, sql, *args):
            if "substr(content" in sql:
                raise sqlite3.OperationalError("disk I/O error (injected)")
            return real.execute(sql, *args)

    backend.db = Broken()
    try:
        with pytest.raises(QueryTablesError):
            backend.file_heads(["gen/table.py", "src/main.py"])
    finally:
        backend.db = real
    heads = backend.file_heads(["gen/table.py", "src/main.py"])
    assert heads["gen/table.py"].startswith("# Code generated") and heads["src/main.py"].startswith("def main")
