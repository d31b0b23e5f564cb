"""Evidence outside the two retrieval scores: a chunk that defines a queried name, a path that
names what the query asks about."""

from __future__ import annotations

import re
from functools import lru_cache

from ..tokens import split_identifier
from .query import bare_name

# chunk kinds that introduce a name (the chunker's own metadata); a type is what a bare
# capitalised name usually means, so it outranks a function or method of the same name
TYPE_KINDS = frozenset("class struct interface trait enum type union protocol object record "
                       "module namespace typedef".split())
CALLABLE_KINDS = frozenset("function method macro constructor property field constant variable".split())
# weight of a callable definition relative to a type definition
CALLABLE_TIER = 0.8
# weight of a case-insensitive name match (``parsejson`` for ``parseJSON``) relative to an exact
# one: often another name altogether (the method ``deserialize`` for the trait ``Deserialize``)
CASEFOLD_TIER = 0.3
# a file named after the symbol (mux.go for Mux, Router.java for Router) is where it lives
STEM_MATCH_TIER = 1.25
# shortest path word that may match a query word by prefix (inflection), below it only exact
PREFIX_MIN = 4

_SUFFIXES = ("ications", "ication", "izations", "ization", "ations", "ation", "ments", "ment",
             "ings", "ing", "ers", "er", "ies", "es", "ed", "s")


def symbol_name(symbol: str) -> str:
    """The defined name of a stored ``symbol`` (``Mux.Handle`` -> ``Handle``); the first one
    when the chunk defines several (see :func:`defined_names`)."""
    names = defined_names(symbol)
    return names[0] if names else ""


def defined_names(symbol: str) -> list[str]:
    """Every name a stored ``symbol`` defines: the chunker lists the definitions of a chunk
    that holds several as ``a, b, c`` (no single name contains ``", "``)."""
    return [bare_name(part) for part in symbol.split(", ") if part.strip()] if symbol else []


def definition_tier(symbol: str, kind: str, path: str, name: str) -> float:
    """How strongly a chunk with ``symbol``/``kind`` defines ``name`` (0: it does not)."""
    return max((_name_tier(own, kind, path, name) for own in defined_names(symbol)), default=0.0)


def _name_tier(own: str, kind: str, path: str, name: str) -> float:
    if not own:
        return 0.0
    if own == name:
        tier = 1.0
    elif own.lower() == name.lower():
        tier = CASEFOLD_TIER
    else:
        return 0.0
    if kind in TYPE_KINDS:
        pass
    elif kind in CALLABLE_KINDS:
        tier *= CALLABLE_TIER
    else:
        return 0.0
    stem = _stem_of(path)
    if stem.replace("_", "").replace("-", "") == name.lower() or normalize(stem) == normalize(name.lower()):
        tier *= STEM_MATCH_TIER
    return tier


def _stem_of(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.split(".", 1)[0].lower()


def normalize(word: str) -> str:
    """A light stem: ``dependencies`` / ``dependency`` -> ``dependenc``; ``routing`` -> ``rout``."""
    w = word.lower()
    for suf in _SUFFIXES:
        if len(w) - len(suf) >= 3 and w.endswith(suf):
            w = w[: -len(suf)]
            break
    if w.endswith("y") and len(w) > 3:
        w = w[:-1]
    return w


@lru_cache(maxsize=65536)
def path_words(path: str) -> frozenset[str]:
    """Normalised words of a file's name and its parent directory."""
    parts = path.split("/")
    words = set()
    for piece in parts[-2:]:
        stem = piece.split(".", 1)[0] if piece == parts[-1] else piece
        for w in split_identifier(re.sub(r"[^A-Za-z0-9_]", "_", stem)):
            if len(w) > 1 and not w.isdigit():
                words.add(normalize(w))
    return frozenset(words)


def word_matches(word: str, words: frozenset[str]) -> bool:
    """``word`` (normalised) is one of ``words``, or they share a long prefix (inflection)."""
    if word in words:
        return True
    if len(word) < PREFIX_MIN:
        return False
    for w in words:
        if len(w) >= PREFIX_MIN and (w.startswith(word) or word.startswith(w)):
            return True
    return False


def path_match_ratio(path: str, query_words: tuple[str, ...]) -> float:
    """The share of the query's normalised words found in the file's name or directory."""
    if not query_words:
        return 0.0
    words = path_words(path)
    if not words:
        return 0.0
    return sum(1 for w in query_words if word_matches(w, words)) / len(query_words)


def stem_names(path: str, name: str) -> bool:
    """The file is named after ``name``: ``Session.swift``, ``changeset.ex``, ``flow_control.rs``
    for ``FlowControl``."""
    stem = _stem_of(path).replace("_", "").replace("-", "")
    return bool(stem) and stem == name.lower().replace("_", "").replace("-", "")
