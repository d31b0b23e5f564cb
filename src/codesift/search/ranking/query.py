"""What a query asks for: a symbol lookup, prose, or prose that names code.

The kind decides how much the text leg counts against the vector leg, and whether the
definitions of the named symbols are looked up. Words like "test" or "example" say the
user wants the files that the priors would otherwise rank down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..tokens import is_identifier_like, split_identifier

SYMBOL = "symbol"
MIXED = "mixed"
PROSE = "prose"

# one name, possibly qualified: Foo, foo_bar, a.b.C, A::B, self->x, Foo#bar, Foo\Bar
_QUALIFIED = re.compile(r"^[A-Za-z_$][\w$]*(?:(?:::|->|\.|#|\\)[A-Za-z_$][\w$]*)*(?:\(\))?$")
# names embedded in prose: CamelCase with an inner capital, camelCase, snake_case, dotted
_EMBEDDED = re.compile(
    r"(?<![\w.])(?:[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*|[A-Z]{2,}[a-z][A-Za-z0-9]*|[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*"
    r"|[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+|[A-Za-z_]\w*(?:(?:\.|::)[A-Za-z_]\w*)+)(?![\w])")
_CAPITALISED = re.compile(r"(?<![\w.])[A-Z][a-z0-9]{2,}[A-Za-z0-9]*(?![\w])")
_SEPARATORS = ("::", "->", "#", "\\", ".")
_STOP = frozenset(
    "a an and are as at be by can do does for from has have how i if in into is it its of on or "
    "that the their then this to use used uses using via what when where which who why with within "
    "without".split())
# words that ask for what the priors rank down
ASKS_TESTS = frozenset("test tests testing tested spec specs unittest fixture fixtures mock mocks".split())
ASKS_EXAMPLES = frozenset("example examples sample samples demo demos tutorial".split())
ASKS_DOCS = frozenset("doc docs documentation readme guide changelog".split())
ASKS_BENCH = frozenset("benchmark benchmarks bench".split())


@dataclass(frozen=True)
class QueryInfo:
    text: str
    kind: str                      # SYMBOL, MIXED or PROSE
    names: tuple[str, ...]         # symbol names to look up (last component of a qualified name)
    words: tuple[str, ...]         # lower-cased content words (for path evidence)
    asks: frozenset[str]           # subset of {"tests", "examples", "docs", "bench"}


def bare_name(name: str) -> str:
    """``a.b.C`` / ``A::B`` / ``Foo#bar()`` -> the last component, without call parentheses."""
    name = name.strip().removesuffix("()")
    for sep in _SEPARATORS:
        if sep in name:
            name = name.rsplit(sep, 1)[-1]
    return name


def _is_symbol(query: str) -> bool:
    q = query.strip().strip("`'\"")
    if not q or " " in q:
        return False
    if not _QUALIFIED.match(q):
        return False
    # a single plain lower-case word ("session") is prose; a capitalised one ("Router") is a name
    return not q.isalpha() or not q.islower() or is_identifier_like(q)


def understand(query: str) -> QueryInfo:
    q = query.strip()
    if _is_symbol(q):
        kind = SYMBOL
        full = q.strip("`'\"").removesuffix("()")
        names = tuple(dict.fromkeys([bare_name(full)]))
    else:
        found = [m.group(0) for m in _EMBEDDED.finditer(q)]
        # a capitalised word inside a sentence is a name (``how Session dispatches requests``);
        # an acronym (SQL, HTTP) or the sentence's first word is not
        found += [w for w in _CAPITALISED.findall(q)[0:] if q.find(w) > 0 and not w.isupper()]
        names = tuple(dict.fromkeys(bare_name(n) for n in found if bare_name(n)))
        kind = MIXED if names else PROSE
    words = []
    for w in re.findall(r"[A-Za-z][A-Za-z0-9]*", q):
        for part in split_identifier(w) if kind != PROSE else [w.lower()]:
            if len(part) > 2 and part not in _STOP:
                words.append(part)
    lower = {w.lower() for w in re.findall(r"[A-Za-z]+", q)}
    asks = set()
    if lower & ASKS_TESTS:
        asks.add("tests")
    if lower & ASKS_EXAMPLES:
        asks.add("examples")
    if lower & ASKS_DOCS:
        asks.add("docs")
    if lower & ASKS_BENCH:
        asks.add("bench")
    return QueryInfo(q, kind, names, tuple(dict.fromkeys(words)), frozenset(asks))
