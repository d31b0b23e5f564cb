"""``--lang`` and ``--path`` filters as SQL predicates LanceDB evaluates *before* top-k.

Path globs (matched against the POSIX path relative to the indexed root):

* no glob characters: that file, or everything under that directory (``src/codesift``);
* ``*`` any run of characters except ``/``; ``?`` one character except ``/``;
  ``**`` any run including ``/`` (``**/`` also matches no directory at all); ``[abc]`` a class;
* a pattern without ``/`` matches the file name in any directory (``*.py``, ``test_*``).

Every glob becomes ``path LIKE '<literal prefix>%'`` (answered by the ``path`` BTree index
when the prefix is not empty) ``AND regexp_like(path, '^...$')`` for the exact match.
Languages become ``language IN (...)`` (answered by the ``language`` bitmap index).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_GLOB_CHARS = set("*?[")
_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _re_escape(text: str) -> str:
    return "".join("\\" + c if c in _REGEX_META else c for c in text)


def glob_to_regex(glob: str) -> str:
    out, i, n = [], 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                i += 2
                if i < n and glob[i] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = glob.find("]", i + 2 if glob.startswith("[!", i) or glob.startswith("[^", i) else i + 1)
            if j < 0:
                out.append("\\[")
            else:
                body = glob[i + 1 : j]
                neg = body[:1] in ("!", "^")
                body = body[1:] if neg else body
                body = body.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
                out.append("[" + ("^" if neg else "") + body + "]")
                i = j
        else:
            out.append(_re_escape(c))
        i += 1
    return "".join(out)


def glob_predicate(glob: str) -> str:
    g = glob.strip()
    while g.startswith("./"):
        g = g[2:]
    g = g.rstrip("/") if len(g) > 1 else g
    if not g or g in (".", "**", "*"):
        return "TRUE"
    if not _GLOB_CHARS.intersection(g):
        return f"(path = {sql_str(g)} OR path LIKE {sql_str(_like_escape(g) + '/%')})"
    anchored = "/" in g
    body = glob_to_regex(g)
    regex = "^" + body + "$" if anchored else "^(?:.*/)?" + body + "$"
    cut = min(g.index(c) for c in _GLOB_CHARS if c in g)
    prefix = g[:cut] if anchored else ""
    parts = []
    if prefix:
        parts.append(f"path LIKE {sql_str(_like_escape(prefix) + '%')}")
    parts.append(f"regexp_like(path, {sql_str(regex)})")
    return "(" + " AND ".join(parts) + ")"


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if v]


def where_clause(lang: str | Iterable[str] | None = None, path: str | Iterable[str] | None = None,
                 extra: str | None = None) -> str | None:
    """The combined predicate, or None when nothing is filtered."""
    clauses = []
    langs = sorted({v.strip().lower() for v in _as_list(lang) if v.strip()})
    if langs:
        clauses.append("language IN (" + ", ".join(sql_str(v) for v in langs) + ")")
    globs = [glob_predicate(g) for g in _as_list(path)]
    if globs and "TRUE" not in globs:
        clauses.append(globs[0] if len(globs) == 1 else "(" + " OR ".join(globs) + ")")
    if extra:
        clauses.append(extra)
    return " AND ".join(clauses) if clauses else None


def glob_test(glob: str) -> Callable[[str], bool] | None:
    """:func:`glob_predicate` as a Python test of a stored path (None: every path matches)."""
    g = glob.strip()
    while g.startswith("./"):
        g = g[2:]
    g = g.rstrip("/") if len(g) > 1 else g
    if not g or g in (".", "**", "*"):
        return None
    if not _GLOB_CHARS.intersection(g):
        under = g + "/"
        return lambda p: p == g or p.startswith(under)
    body = glob_to_regex(g)
    pattern = re.compile("^" + body + "$" if "/" in g else "^(?:.*/)?" + body + "$")
    return lambda p: pattern.match(p) is not None


@dataclass(frozen=True)
class Filter:
    """The ``--lang`` / ``--path`` filters of one search, for either retrieval backend:
    a SQL predicate (LanceDB) or Python tests of a row's language and path."""

    langs: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()

    @classmethod
    def of(cls, lang=None, path=None) -> "Filter":
        langs = tuple(sorted({v.strip().lower() for v in _as_list(lang) if v.strip()}))
        return cls(langs, tuple(_as_list(path)))

    def sql(self) -> str | None:
        return where_clause(lang=list(self.langs), path=list(self.globs))

    def path_test(self) -> Callable[[str], bool] | None:
        tests = [glob_test(g) for g in self.globs]
        if not tests or any(t is None for t in tests):
            return None
        return lambda p: any(t(p) for t in tests)

    @property
    def active(self) -> bool:
        return bool(self.langs) or self.path_test() is not None
