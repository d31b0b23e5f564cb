"""``codesift mcp``: arguments and start-up (the server lives in :mod:`.mcp_server`).

Start-up imports only the standard library and codesift's light modules: the stdio
server answers ``initialize`` before anything heavy (LanceDB, the model) is loaded.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("codesift.mcp")


def add_mcp_arguments(p: argparse.ArgumentParser) -> None:
    from .watch_command import add_watch_options

    p.add_argument("root", nargs="?", default=".", help="the indexed tree (default: .)")
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                   help="stdio (default; for a client that starts the server) or http (streamable HTTP at /mcp)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument("--watch", action="store_true", help="also keep the index fresh while files change")
    p.add_argument("--tool-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="deadline of each tool call (default 30)")
    p.add_argument("--job-timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="an index job started by reindex is stopped after this long (default 3600)")
    add_watch_options(p)


def run_mcp(args, root: Path, index_dir: Path) -> int:
    from .. import __version__
    from ..errors import ConfigError
    from .mcp_server import CodesiftService, serve_http, serve_stdio

    if not args.tool_timeout > 0 or not args.job_timeout > 0:
        raise ConfigError("--tool-timeout and --job-timeout must be > 0")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1-65535, got {args.port}")
    watcher = None
    if args.watch:
        from .watch_command import make_watcher

        watcher = make_watcher(args, root, index_dir)
    service = CodesiftService(root, index_dir, embedder=args.embedder, tool_timeout_s=args.tool_timeout,
                              job_timeout_s=args.job_timeout, watcher=watcher)
    if watcher is not None:
        watcher.start_thread()
    try:
        if args.transport == "http":
            serve_http(service, host=args.host, port=args.port, version=__version__)
        else:
            serve_stdio(service, version=__version__)
    except KeyboardInterrupt:
        pass
    finally:
        if watcher is not None:
            watcher.join(10.0)
        service.close(10.0)
    return 0
