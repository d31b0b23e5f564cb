"""``python -m codesift.interfaces.mcp.index_job ROOT [index options]``: one ``codesift
index --json`` run for a reindex job, whose stdout is always one JSON summary.

``codesift index --json`` prints its summary once the run has started; a run refused
before that (the lock is held, a bad option) prints only a line on stderr. Here such a
refusal is written as a summary too, ``{"status": "failed", "error": {..., "kind":
"IndexLockedError"}}``, so the job manager reads every outcome from JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys


def main(argv: list[str]) -> int:
    from ...errors import CodesiftError
    from ..cli import build_parser, cmd_index

    args = build_parser().parse_args(["index", *argv])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("codesift: %(levelname)s: %(message)s"))
    logging.getLogger("codesift").handlers[:] = [handler]
    try:
        return cmd_index(args)
    except CodesiftError as exc:
        _summary("failed", {**exc.as_dict(), "kind": type(exc).__name__})
        print(f"codesift: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _summary("interrupted", {"stage": "supervisor", "message": "interrupted before the run started",
                                 "path": None, "kind": "InterruptedRun"})
        return 130


def _summary(status: str, error: dict) -> None:
    print(json.dumps({"status": status, "error": error}), flush=True)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as the CLI does: no interpreter finalization under abandoned threads
