"""``codesift watch``: arguments and start-up (the loop lives in :mod:`codesift.watching`)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_DEBOUNCE_MS = 100


def add_watch_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``watch`` and ``mcp --watch``."""
    p.add_argument("--embedder", default=None,
                   help="embedder for new chunks (default: the one the index was built with, else minilm)")
    p.add_argument("--debounce", type=int, default=DEFAULT_DEBOUNCE_MS, metavar="MS",
                   help=f"re-index once no file changed for MS milliseconds (default {DEFAULT_DEBOUNCE_MS}; "
                        "a burst of changes waits at most 2 s)")
    p.add_argument("--max-file-size", default=None, metavar="SIZE", help="skip larger files (default 1MiB)")
    p.add_argument("--threads", type=int, default=0, help="embedder threads (default: the CPUs available)")


def add_watch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", nargs="?", default=".", help="the tree to watch (default: .)")
    add_watch_options(p)
    p.add_argument("--no-initial", action="store_true",
                   help="do not run an incremental index at start (only index what changes from now on)")


def make_watcher(args, root: Path, index_dir: Path, *, initial: bool = True):
    from .. import config as C
    from ..watching import Watcher

    max_size = C.parse_size(args.max_file_size) if args.max_file_size else None
    return Watcher(root, index_dir, embedder=args.embedder, debounce_ms=args.debounce, max_file_size=max_size,
                   threads=args.threads, initial=initial)


def run_watch(args, root: Path, index_dir: Path) -> int:
    """Watch until SIGINT/SIGTERM; exit status 0 after a stop by signal (a cycle in progress
    is interrupted cleanly: what was complete is committed)."""
    watcher = make_watcher(args, root, index_dir, initial=not args.no_initial)
    return watcher.run(handle_signals=True)
