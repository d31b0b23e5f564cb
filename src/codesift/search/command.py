"""``codesift search`` and ``codesift similar``: arguments and execution.

Both go through :class:`codesift.search.engine.Searcher`, the code path of the Python
API (``codesift.open(root).search``) and of the MCP server.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .engine import MODES


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lang", action="append", default=[], metavar="LANG",
                   help="only chunks of this language (repeat for several)")
    p.add_argument("--path", action="append", default=[], metavar="GLOB",
                   help="only paths matching this glob, relative to the root: a directory or file, "
                        "'*.py', 'src/**/test_*.py' (repeat for several)")


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="?", help="what to look for (omit with --batch)")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument("--mode", choices=MODES, default="hybrid",
                   help="hybrid (default: meaning + keywords), vector (meaning) or text (BM25 keywords)")
    _add_filters(p)
    p.add_argument("--json", action="store_true", help="print hits as a JSON list")
    p.add_argument("--batch", metavar="FILE",
                   help="one query per line ('-' for stdin); prints JSON Lines, one list of hits per query")
    p.add_argument("--root", default=".", help="the indexed tree (default: .)")
    # ablation only (benchmarks/codesearch.py): switch one ranking signal off
    p.add_argument("--no-signal", action="append", default=[], metavar="NAME", help=argparse.SUPPRESS)


def add_similar_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("location", metavar="PATH:LINE", help="a line of an indexed file")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    _add_filters(p)
    p.add_argument("--json", action="store_true", help="print hits as a JSON list")
    p.add_argument("--root", default=".", help="the indexed tree (default: .)")


def _filters(args) -> dict:
    return {"lang": list(args.lang or []), "path": list(args.path or [])}


def _print_hits(hits, as_json: bool) -> None:
    if as_json:
        print(json.dumps([h.as_dict() for h in hits], indent=2))
    else:
        from ..interfaces.render import render_hits

        render_hits(hits, sys.stdout)


def _read_batch(name: str) -> list[str]:
    from ..errors import ConfigError

    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read --batch file {name}: {exc.strerror or exc}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def run_search(args, root: Path, index_dir: Path) -> int:
    from ..errors import ConfigError
    from .engine import open_searcher

    if args.batch is None and not (args.query or "").strip():
        raise ConfigError("give a query, or --batch FILE")
    if args.batch is not None and args.query:
        raise ConfigError("give either a query or --batch FILE, not both")
    searcher = open_searcher(root, index_dir)
    off = set(getattr(args, "no_signal", None) or [])
    if off:
        from .ranking import SIGNALS

        unknown = off - set(SIGNALS)
        if unknown:
            raise ConfigError(f"unknown ranking signal(s): {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(SIGNALS)})")
        searcher.disabled_signals = frozenset(off)
    if args.batch is not None:
        queries = _read_batch(args.batch)
        out = sys.stdout
        for hits in searcher.search_many(queries, k=args.k, mode=args.mode, **_filters(args)):
            out.write(json.dumps([h.as_dict() for h in hits]) + "\n")
        out.flush()
        return 0
    hits = searcher.search(args.query, k=args.k, mode=args.mode, **_filters(args))
    _print_hits(hits, args.json)
    _note_coverage(searcher)
    return 0


def _note_coverage(searcher) -> None:
    """On a terminal, one line while an index run's vectors are still coming in."""
    if not sys.stderr.isatty():
        return
    cov = searcher.coverage()
    if cov["vectors"] < cov["chunks"]:
        sys.stderr.write(f"note: {cov['chunks'] - cov['vectors']} of {cov['chunks']} chunks are not embedded yet "
                         "(an index run is in progress): they are found by text and name; results improve as "
                         "vectors arrive\n")


def parse_location(location: str) -> tuple[str, int]:
    from ..errors import ConfigError

    path, sep, line = location.rpartition(":")
    if not sep or not path or not line.strip().isdigit() or int(line) < 1:
        raise ConfigError(f"expected PATH:LINE (e.g. src/app.py:42), got {location!r}")
    return path, int(line)


def run_similar(args, root: Path, index_dir: Path) -> int:
    from .engine import open_searcher

    path, line = parse_location(args.location)
    hits = open_searcher(root, index_dir).similar(path, line, k=args.k, **_filters(args))
    _print_hits(hits, args.json)
    return 0
