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
    _add_server(p)
    # ablation only (benchmarks/codesearch.py): switch one ranking signal off
    p.add_argument("--no-signal", action="append", default=[], metavar="NAME", help=argparse.SUPPRESS)


def add_similar_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("location", metavar="PATH:LINE", help="a line of an indexed file")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    _add_filters(p)
    p.add_argument("--json", action="store_true", help="print hits as a JSON list")
    p.add_argument("--root", default=".", help="the indexed tree (default: .)")
    _add_server(p)


def _add_server(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-server", action="store_true",
                   help="search in this process only: neither ask nor start the index's resident search "
                        "process (also CODESIFT_RESIDENT=off)")


def _resident(args, root: Path, index_dir: Path, request: dict) -> dict | None:
    """The resident process's answer (see :mod:`.resident`), or None: search in-process."""
    from . import resident

    if args.no_server or not resident.enabled():
        return None
    try:
        reply = resident.ask(root, index_dir, request)
    except resident.Unreachable:
        return None
    if not reply["ok"]:
        resident.raise_error(reply)
    hits = reply.get("hits")
    if not (isinstance(hits, list) and hits and all(isinstance(hs, list) and all(isinstance(h, dict) for h in hs)
                                                    for hs in hits)):
        return None  # a malformed answer: search here
    try:
        from .hits import Hit

        reply["hits"] = [[Hit(**h) for h in hs] for hs in hits]
    except TypeError:
        return None
    resident.replay_warnings(reply)
    return reply


def _start_resident(args, root: Path, index_dir: Path) -> None:
    """After an in-process search succeeded: start the resident process for the next ones."""
    from . import resident

    if not args.no_server and resident.enabled():
        resident.start(root, index_dir)


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
    off = set(getattr(args, "no_signal", None) or [])
    if off:
        from .ranking import SIGNALS

        unknown = off - set(SIGNALS)
        if unknown:
            raise ConfigError(f"unknown ranking signal(s): {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(SIGNALS)})")
    queries = _read_batch(args.batch) if args.batch is not None else [args.query]
    # A batch loads the model once in this process anyway, and may run longer than the
    # resident process's reply deadline: it is searched here.
    reply = None if args.batch is not None else _resident(
        args, root, index_dir, {"op": "search", "queries": queries, "k": args.k, "mode": args.mode,
                                "no_signal": sorted(off), **_filters(args)})
    if reply is not None:
        results = reply["hits"]
        coverage = reply.get("coverage") if isinstance(reply.get("coverage"), dict) else {}
    else:
        searcher = open_searcher(root, index_dir)
        searcher.disabled_signals = frozenset(off)
        results = searcher.search_many(queries, k=args.k, mode=args.mode, **_filters(args))
        coverage = searcher.coverage() if args.batch is None and sys.stderr.isatty() else {}
    if args.batch is not None:
        out = sys.stdout
        for hits in results:
            out.write(json.dumps([h.as_dict() for h in hits]) + "\n")
        out.flush()
    else:
        _print_hits(results[0], args.json)
        _note_coverage(coverage)
    if reply is None and args.batch is None:
        _start_resident(args, root, index_dir)
    return 0


def _note_coverage(cov: dict) -> None:
    """On a terminal, one line while an index run's vectors are still coming in."""
    if not sys.stderr.isatty() or not cov:
        return
    chunks, vectors = cov.get("chunks"), cov.get("vectors")
    if isinstance(chunks, int) and isinstance(vectors, int) and vectors < chunks:
        sys.stderr.write(f"note: {chunks - vectors} of {chunks} chunks are not embedded yet "
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
    from .engine import relative_path

    # made absolute here: the resident process does not share this process's working directory
    reply = _resident(args, root, index_dir, {"op": "similar", "path_arg": str(root / relative_path(root, path)),
                                              "line": line, "k": args.k, **_filters(args)})
    if reply is not None:
        hits = reply["hits"][0]
    else:
        hits = open_searcher(root, index_dir).similar(path, line, k=args.k, **_filters(args))
    _print_hits(hits, args.json)
    if reply is None:
        _start_resident(args, root, index_dir)
    return 0
