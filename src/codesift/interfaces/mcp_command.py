"""``codesift mcp``: arguments and start-up (the server lives in :mod:`.mcp`).

Start-up imports only the standard library and codesift's light modules: the stdio
server answers ``initialize`` before anything heavy (LanceDB, the model) is loaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("codesift.mcp")

SHUTDOWN_S = 30.0  # the longest the server takes to stop its index jobs when it exits
WATCH_STOP_S = 10.0  # and its watchers (all of them together): a cycle in progress is cancelled


def add_mcp_arguments(p: argparse.ArgumentParser) -> None:
    from .watch_command import add_watch_options

    p.add_argument("roots", nargs="*", metavar="ROOT",
                   help="the indexed trees (default: .); several roots are served as repositories named after "
                        "their directories")
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                   help="stdio (default; for a client that starts the server) or http (streamable HTTP at /mcp)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="also accept this HTTP Host header (repeatable; HOST:* for any port)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="also accept requests from this browser Origin, e.g. https://app.example "
                        "(repeatable; SCHEME://HOST:* for any port)")
    p.add_argument("--watch", action="store_true", help="also keep the indexes fresh while files change")
    p.add_argument("--tool-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="deadline of each tool call (default 30)")
    p.add_argument("--job-timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="an index job started by reindex is stopped after this long (default 3600)")
    add_watch_options(p)


def resolve_repos(args) -> list[tuple[Path, Path]]:
    """(root, index dir) of each ROOT; one index directory option cannot serve several."""
    from .. import config as C
    from ..errors import ConfigError

    roots = []
    for raw in args.roots or ["."]:
        root = Path(raw).expanduser().resolve()
        if not root.is_dir():
            raise ConfigError(f"not a directory: {raw}")
        if root in roots:
            raise ConfigError(f"{raw} is given twice")
        roots.append(root)
    if len(roots) > 1 and (args.index_dir or os.environ.get(C.INDEX_DIR_ENV)):
        raise ConfigError(f"--index-dir and ${C.INDEX_DIR_ENV} name one index, but {len(roots)} roots were given; "
                          f"each root uses its own ROOT/{C.DEFAULT_INDEX_DIRNAME}")
    return [(root, C.resolve_index_dir(root, args.index_dir)) for root in roots]


def run_mcp(args) -> int:
    from .. import __version__
    from ..errors import ConfigError
    from .mcp import CodesiftService, Repo, repo_names

    if not args.tool_timeout > 0 or not args.job_timeout > 0:
        raise ConfigError("--tool-timeout and --job-timeout must be > 0")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1-65535, got {args.port}")
    pairs = resolve_repos(args)
    repos = []
    for name, (root, index_dir) in zip(repo_names([r for r, _ in pairs]), pairs):
        watcher = None
        if args.watch:
            from .watch_command import make_watcher

            watcher = make_watcher(args, root, index_dir)
        repos.append(Repo(name, root, index_dir, watcher))
    service = CodesiftService(repos, embedder=args.embedder, tool_timeout_s=args.tool_timeout,
                              job_timeout_s=args.job_timeout)
    for repo in repos:
        if repo.watcher is not None:
            repo.watcher.start_thread()
    try:
        if args.transport == "http":
            from .mcp.http import serve_http

            serve_http(service, host=args.host, port=args.port, version=__version__,
                       allow_hosts=args.allow_host, allow_origins=args.allow_origin, shutdown_s=SHUTDOWN_S)
            service.close(SHUTDOWN_S)
        else:
            from .mcp.stdio import serve_stdio

            serve_stdio(service, version=__version__, shutdown_s=SHUTDOWN_S)
    finally:
        # every watcher is told at once, then all are joined against one deadline
        watchers = [repo.watcher for repo in repos if repo.watcher is not None]
        for watcher in watchers:
            watcher.stop()
        deadline = time.monotonic() + WATCH_STOP_S
        for watcher in watchers:
            watcher.join(max(0.0, deadline - time.monotonic()))
        service.close(SHUTDOWN_S)  # already done on a normal exit: a no-op then
    return 0
