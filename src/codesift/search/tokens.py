"""Identifier-aware text for the full-text (BM25) leg.

Code identifiers are split so natural-language words find them, and kept whole so an
exact identifier query ranks its definition first::

    parse_config_file(ParseConfigFile) -> "parseconfigfile parse config file
                                           parseconfigfile parse config file"

The same function is applied to stored chunks (the ``search_text`` column) and to
queries, so both sides agree. The FTS index then only splits on whitespace, lower-cases,
folds accents, removes English stop words and stems (see ``maintenance.FTS_OPTIONS``).
Pure standard library: it is imported by the indexing pipeline too.
"""

from __future__ import annotations

import functools
import re

_WORD = re.compile(r"[^\W\d_]\w*|\d+")
# aB -> a|B ; ABc -> A|Bc ; a1 -> kept together
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_MAX_TOKEN = 40


def split_identifier(word: str) -> list[str]:
    """``parse_configFile2`` -> ``['parse', 'config', 'file', '2']`` (lower-cased)."""
    parts: list[str] = []
    for piece in word.split("_"):
        if piece:
            parts.extend(p.lower() for p in _CAMEL.findall(piece))
    return parts


@functools.lru_cache(maxsize=1 << 13)  # ~3 MB; most words of code are frequent ones
def _word_tokens(word: str) -> tuple[str, ...]:
    """One word's tokens: whole (lower-cased), then its parts if compound. Cached: code
    repeats its identifiers, and this runs for every word of every chunk."""
    parts = split_identifier(word)
    # one spelling for every naming convention: parse_config_file, ParseConfigFile,
    # parseConfigFile and PARSE_CONFIG_FILE all give "parseconfigfile"
    if len(parts) > 1:
        return ("".join(parts)[:_MAX_TOKEN], *parts)
    return (word.lower()[:_MAX_TOKEN],)


def analyze(text: str) -> list[str]:
    """Tokens of ``text``: every identifier whole (lower-cased), then its parts if compound."""
    out: list[str] = []
    for word in _WORD.findall(text):
        out.extend(_word_tokens(word))
    return out


# How many times the header (directories, file stem, symbol) is repeated in ``search_text``:
# BM25 has no per-field weights in LanceDB's FTS, so repetition is the field weight. A name is
# stronger evidence than a mention in a comment; 3 beat 2 on the code-search benchmark's text
# leg (benchmarks/EVAL.md). Indexes written with another weight still work (the query side is
# unchanged); ``maintenance.rebuild_search_text`` brings them to this one without re-embedding.
HEADER_REPEAT = 3


def header_text(path: str, symbol: str) -> str:
    """Where a chunk lives and what it is: its two innermost directories, the file's stem,
    the symbol."""
    parts = path.split("/")
    stem = parts[-1].rsplit(".", 1)[0]
    return " ".join(parts[-3:-1] + [stem, symbol or ""])


def index_text(path: str, symbol: str, content: str) -> str:
    """The ``search_text`` column of a chunk: the header ``HEADER_REPEAT`` times, then the body."""
    head = " ".join(analyze(header_text(path, symbol)))
    return " ".join([head] * HEADER_REPEAT + analyze(content))


def query_text(query: str) -> str:
    return " ".join(analyze(query))


_IDENT_SHAPES = (
    re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$"),          # dotted.name
    re.compile(r"^_*[a-z0-9]+(_+[a-z0-9]+)+_*$", re.I),      # snake_case / SCREAMING_CASE
    re.compile(r"^_*[a-z]+[A-Z][A-Za-z0-9]*$"),              # camelCase
    re.compile(r"^_*[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*$"),      # CamelCase
    re.compile(r"^_*[A-Z]{2,}[a-z]\w*$"),                    # HTTPServer
    re.compile(r"^__\w+__$"),                                # dunder
)


def is_identifier_like(query: str) -> bool:
    """True when the query is (mostly) code names rather than prose: ``parse_config_file``,
    ``ParseConfig``, ``os.path.join``, ``ChunkStore.replace_rows()``."""
    words = [w.strip("()[]{},:;`'\"") for w in query.split()]
    words = [w for w in words if w]
    if not words or len(words) > 4:
        return False
    hits = sum(1 for w in words if any(p.match(w) for p in _IDENT_SHAPES))
    return hits * 2 >= len(words)
