"""Priors: what a file is, from the path and content conventions of each ecosystem.

Tests, examples, docs, benchmarks, vendored copies, generated or minified code, single-header
amalgamations and type-declaration stubs usually restate or exercise the implementation; when a
user searches for behaviour, the implementation is the answer. Each class is found by the
conventions its ecosystems share (``tests/``, ``*_test.go``, ``FooTest.java``, ``*.spec.ts``,
``*.d.ts``, ``vendor/``, ``Code generated ... DO NOT EDIT``), never by a project's name.
"""

from __future__ import annotations

import re
from functools import lru_cache

TESTS = "tests"
EXAMPLES = "examples"
DOCS = "docs"
BENCH = "bench"
VENDORED = "vendored"
GENERATED = "generated"
AMALGAMATION = "amalgamation"
STUB = "stub"

# Multipliers on a candidate's score. Tests and examples restate the code they exercise, so they
# lose most; docs describe behaviour but are not it; stubs still carry the types, so they lose least.
PENALTY = {
    TESTS: 0.55,
    EXAMPLES: 0.6,
    DOCS: 0.7,
    BENCH: 0.6,
    VENDORED: 0.5,
    GENERATED: 0.6,
    AMALGAMATION: 0.5,
    STUB: 0.8,
}
# the query words that lift a penalty (see query.ASKS_*)
LIFTED_BY = {TESTS: "tests", EXAMPLES: "examples", DOCS: "docs", BENCH: "bench"}

_TEST_DIR = re.compile(r"(?:^|/)(?:tests?|__tests__|spec|specs|testing|testdata|test-?utils|"
                       r"[A-Za-z]*Tests|src/test|fixtures?|__mocks__|e2e)(?:/|$)", re.I)
_TEST_FILE = re.compile(
    r"(?:^|/)(?:test_[^/]*|[^/]*_tests?\.[a-z]+|[^/]*_unittest\.[a-z]+|[^/]*_spec\.[a-z]+|"
    r"[^/]*\.(?:test|spec)\.[a-z]+|[^/]*(?:Tests?|Spec|Suite|IT)\.(?:java|kt|kts|scala|swift|cs|groovy|php|m|mm)|"
    r"conftest\.py|[^/]*_test_helpers?\.[a-z]+|test_helpers?\.[a-z]+|[^/]*_mock\.[a-z]+|mock_[^/]*)$")
_EXAMPLE_DIR = re.compile(r"(?:^|/)_?(?:examples?|samples?|demos?|tutorials?|docs?_src|playground)(?:/|$)", re.I)
_DOC_DIR = re.compile(r"(?:^|/)(?:docs?|documentation|man|guides?)(?:/|$)", re.I)
_DOC_FILE = re.compile(r"\.(?:md|mdx|markdown|rst|txt|adoc|asciidoc|org|textile|rdoc|pod)$|"
                       r"(?:^|/)(?:README|CHANGELOG|CHANGES|HISTORY|NEWS|CONTRIBUTING|LICENSE|COPYING|"
                       r"AUTHORS|NOTICE)[^/]*$", re.I)
_BENCH = re.compile(r"(?:^|/)(?:benches|benchmarks?|bench|perf)(?:/|$)|"
                    r"(?:^|/)[^/]*_(?:benchmark|bench)\.[a-z]+$|(?:^|/)[^/]*Benchmarks?\.[a-z]+$", re.I)
_VENDORED = re.compile(r"(?:^|/)(?:vendor|vendored|third[_-]?party|3rdparty|external|extern|deps|"
                       r"node_modules|bower_components)(?:/|$)", re.I)
_GENERATED_FILE = re.compile(
    r"(?:\.min\.(?:js|css)|\.pb\.(?:go|cc|h)|_pb2(?:_grpc)?\.py|\.g\.dart|\.freezed\.dart|"
    r"\.generated\.[a-z]+|_generated\.[a-z]+|\.designer\.cs|-lock\.json|\.lock|\.map)$", re.I)
_GENERATED_MARK = re.compile(r"(?:Code generated .{0,80}DO NOT EDIT|@generated|auto-?generated|"
                             r"This file (?:is|was) (?:automatically )?generated)", re.I)
_AMALGAMATION = re.compile(r"(?:^|/)(?:single_include|amalgamat\w*)(?:/|$)|amalgamation\.[a-z]+$", re.I)
_STUB = re.compile(r"\.d\.(?:ts|mts|cts)$|\.pyi$|\.rbi$")
# a minified chunk: lines far longer, on average, than anyone writes by hand
MINIFIED_LINE = 400
# generators write their banner in a file's first lines
BANNER_LINES = 5


@lru_cache(maxsize=65536)
def path_classes(path: str) -> frozenset[str]:
    """The prior classes a repository-relative POSIX path belongs to (may be several)."""
    out = set()
    if _TEST_FILE.search(path) or _TEST_DIR.search(path):
        out.add(TESTS)
    if _EXAMPLE_DIR.search(path):
        out.add(EXAMPLES)
    if _DOC_FILE.search(path) or _DOC_DIR.search(path):
        out.add(DOCS)
    if _BENCH.search(path):
        out.add(BENCH)
    if _VENDORED.search(path):
        out.add(VENDORED)
    if _GENERATED_FILE.search(path):
        out.add(GENERATED)
    if _AMALGAMATION.search(path):
        out.add(AMALGAMATION)
    if _STUB.search(path):
        out.add(STUB)
    return frozenset(out)


# how much of a file's head the banner is looked for in
HEAD_CHARS = 600


@lru_cache(maxsize=8192)
def head_classes(head: str) -> frozenset[str]:
    """Classes of a whole file, seen in its head (the start of its first chunk): a
    generated-code banner, which tools write in a file's first lines."""
    return frozenset([GENERATED]) if _GENERATED_MARK.search(head, 0, HEAD_CHARS) else frozenset()


def content_classes(content: str, start_line: int = 1) -> frozenset[str]:
    """Classes seen in a chunk's own text: a generated-code banner (only looked for near the
    top of a file, where tools write it), minified lines (a long average line)."""
    out = set()
    if start_line <= BANNER_LINES and _GENERATED_MARK.search(content, 0, HEAD_CHARS):
        out.add(GENERATED)
    if len(content) > MINIFIED_LINE and len(content) > MINIFIED_LINE * (content.count("\n") + 1):
        out.add(GENERATED)
    return frozenset(out)


def prior(path: str, content: str, asks: frozenset[str], start_line: int = 1,
          file_classes: frozenset[str] = frozenset()) -> float:
    """The product of the penalties of every class of the chunk (by its path, its own text and
    ``file_classes``, those of its whole file) the query does not ask for."""
    factor = 1.0
    for cls in path_classes(path) | content_classes(content, start_line) | file_classes:
        if LIFTED_BY.get(cls) in asks:
            continue
        factor *= PENALTY[cls]
    return factor
