"""The streamable HTTP transport (``--transport http``), on the official ``mcp`` SDK.

The same tools and error results as stdio (an unknown tool is a -32602 protocol error on
both). DNS-rebinding protection is on for every bind address: the Host header must name
the bound address (or a loopback alias when it is loopback) or an ``--allow-host``, and a
browser's Origin must be that address or an ``--allow-origin``. A cancelled request
cancels the running call, whose work stops at its next check.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import sys
import threading

from .schemas import INSTRUCTIONS, SERVER_NAME, TOOL_NAMES, TOOLS
from .service import Call, CodesiftService, run_tool

log = logging.getLogger("codesift.mcp")

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def security_lists(host: str, port: int, allow_hosts: list[str], allow_origins: list[str]) -> tuple[list, list]:
    """(allowed Host values, allowed Origin values) for a server bound to ``host:port``."""
    bound = f"[{host}]" if ":" in host and not host.startswith("[") else host
    names = [bound] + ([n for n in _LOOPBACK_NAMES if n != bound] if is_loopback(host) else [])
    hosts = [f"{n}:{port}" for n in names] + list(allow_hosts)
    origins = [f"http://{n}:{port}" for n in names] + list(allow_origins)
    return hosts, origins


def serve_http(service: CodesiftService, *, host: str, port: int, version: str,
               allow_hosts: list[str], allow_origins: list[str], shutdown_s: float) -> None:
    """Streamable HTTP at http://HOST:PORT/mcp until SIGINT/SIGTERM (uvicorn's)."""
    import anyio
    import mcp_types as types
    import uvicorn
    from mcp.server.lowlevel import Server
    from mcp.server.transport_security import TransportSecuritySettings
    from mcp.shared.exceptions import MCPError

    tools = [types.Tool.model_validate(t) for t in TOOLS]

    async def list_tools(ctx, params) -> types.ListToolsResult:
        if params is not None and getattr(params, "cursor", None) is not None:
            raise MCPError(-32602, "invalid cursor: every tool is on the first page (no nextCursor was given)")
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx, params) -> types.CallToolResult:
        if params.name not in TOOL_NAMES:
            raise MCPError(-32602, f"unknown tool {params.name!r}; tools: {', '.join(sorted(TOOL_NAMES))}")
        call = Call(service.tool_timeout_s)
        try:
            result = await anyio.to_thread.run_sync(
                lambda: run_tool(service, params.name, params.arguments, call), abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            call.cancel("cancelled by the client")  # the work stops at its next check
            raise
        if result is None:  # cancelled while we were not looking: nobody reads this
            raise MCPError(-32800, "request cancelled")
        return types.CallToolResult.model_validate(result)

    hosts, origins = security_lists(host, port, allow_hosts, allow_origins)
    security = TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                         allowed_origins=origins)
    server = Server(SERVER_NAME, version=version, instructions=INSTRUCTIONS,
                    on_list_tools=list_tools, on_call_tool=call_tool)
    app = server.streamable_http_app(host=host, transport_security=security)
    if not is_loopback(host):
        print(f"codesift: warning: listening on {host}, which is not a loopback address: anyone who can reach "
              f"it can read the served code; allowed Host headers: {', '.join(hosts)}", file=sys.stderr, flush=True)
    print(f"codesift: MCP server listening on http://{host}:{port}/mcp", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, host=host.strip("[]"), port=port, log_level="warning",
                            timeout_graceful_shutdown=max(1, int(shutdown_s)))
    _make_server(config).run()


def _make_server(config):
    """uvicorn's server, minus re-raising the stop signal once it has shut down (uvicorn
    does, to end the process): the caller still has index jobs to stop before exiting."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            old = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in old.items():
                    signal.signal(sig, handler)

    return Server(config)
