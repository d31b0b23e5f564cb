"""Tool errors: a stable ``code``, what went wrong, and the one thing an agent should do.

An agent acts on ``code`` and ``action``; ``message`` names the argument, path or job
concerned. Every action is a single step that changes something (another argument,
another tool, asking the user), never "try again" in a loop.
"""

from __future__ import annotations

from typing import Any

ACTIONS: dict[str, str] = {
    "invalid_arguments": "Fix the argument the message names; tools/list gives each tool's accepted values.",
    "unknown_repo": "Pass one of the repository names that index_status lists.",
    "path_outside_root": "Pass a path relative to the repository root without '..', as search_code hits give it.",
    "not_found": "Use a path from a search_code hit or from index_status; this one does not exist.",
    "not_a_file": "Pass the path of a file, not of a directory.",
    "binary_file": "Read a text file instead; binary files are neither indexed nor shown.",
    "unreadable": "Pick another file: the server cannot read this one (permissions or I/O).",
    "line_out_of_range": "Pass a start_line between 1 and the file's total_lines.",
    "no_index": "Call reindex, then poll job_status until its state is succeeded.",
    "not_indexed": "Call index_status: if the file is stale, call reindex; if it is skipped, it cannot be searched.",
    "embedder_mismatch": "Call reindex with full=true to rebuild the index with the embedder in use.",
    "locked": "Another codesift process is writing this index; index_status shows it, call reindex once it is gone.",
    "unknown_job": "Pass a job_id that reindex returned on this server; restarting the server forgets jobs.",
    "timeout": "Ask the user to raise --tool-timeout if this repeats (the first search also loads the model).",
    "busy": "Wait for the answers to your earlier calls before sending more.",
    "search_failed": "Call index_status and report its last_run error to the user; the index cannot be searched.",
    "internal_error": "Report this message to the user: it is a codesift bug, and repeating the call will not help.",
}


class ToolError(Exception):
    """A tool call that cannot succeed; ``message`` says why, :data:`ACTIONS` what to do."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        if code not in ACTIONS:
            raise ValueError(f"undocumented tool error code {code!r}")  # the contract lists every code
        self.code = code
        self.message = message
        self.details = details

    @property
    def action(self) -> str:
        return ACTIONS[self.code]

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "action": self.action, **self.details}


class CallCancelled(BaseException):
    """The client cancelled the call (or its deadline passed): stop at the next check.

    A ``BaseException``, like other cancellations, so no ``except Exception`` in the
    search path turns it into an error result nobody will read.
    """
