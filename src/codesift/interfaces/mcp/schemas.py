"""The tools as clients see them: names, descriptions, input and output JSON schemas.

Descriptions say when to use a tool and what it costs, because that is what an agent
reads to choose. Output schemas describe successful results only: an error result
carries no ``structuredContent`` (its JSON is in the text content), so clients that
validate every result against ``outputSchema`` (the TypeScript SDK, the Inspector)
accept both.
"""

from __future__ import annotations

SERVER_NAME = "codesift"
# 2025-03-26 is offered because JSON-RPC batches, which it requires, are supported.
PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = PROTOCOL_VERSIONS[-1]
BATCH_VERSIONS = ("2025-03-26",)
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")

MODES = ("hybrid", "vector", "text")
MAX_K = 100
MAX_QUERY_CHARS = 4000
MAX_READ_LINES = 2000
MAX_READ_BYTES = 512 * 1024
MAX_FILTERS = 50
HIT_CONTENT_CHARS = 4000

INSTRUCTIONS = (
    "codesift searches the served repositories by meaning and keyword. Start with search_code (a description "
    "or an identifier); read_code reads exact lines of a hit; find_similar finds code like a given location. "
    "Every search result says in 'coverage' whether the index is complete and fresh: when 'complete' is false, "
    "follow its 'advice' (usually: call reindex, then poll job_status). Errors carry a stable 'code' and one "
    "'action' to take."
)

def _nullable(kind: str, description: str) -> dict:
    """A value of ``kind`` or null, spelled as ``anyOf`` (a list-valued ``type`` is less portable)."""
    return {"anyOf": [{"type": kind}, {"type": "null"}], "description": description}


_REPO = {"type": "string", "minLength": 1,
         "description": "repository name (see index_status); needed only when the server serves several"}

_COVERAGE = {
    "type": "object",
    "description": "how complete and fresh the index of one repository was for this result",
    "properties": {
        "repo": {"type": "string"},
        "exists": {"type": "boolean", "description": "false: nothing is indexed yet (call reindex)"},
        "complete": {"type": "boolean",
                     "description": "true when the last run succeeded, no file is stale or pending and no run "
                                    "is in progress: an empty result then means there is no such code"},
        "files_indexed": {"type": "integer"},
        "chunks": {"type": "integer"},
        "stale_files": _nullable("integer", "files new, modified or deleted since indexed (null: not checked "
                                            "in time)"),
        "stale_checked": {"type": "boolean", "description": "false when the freshness scan ran out of time"},
        "pending_files": {"type": "integer",
                          "description": "files whose vectors an unfinished run has not committed yet"},
        "searchable_chunks": _nullable("integer", "chunks a search sees now, the fast tier's included"),
        "vectors": _nullable("integer", "of those, chunks with a vector; fewer while an index run's fast tier "
                                        "is ahead of its embedder: the others are found by text and name only"),
        "indexing": {"type": "boolean", "description": "an index run is in progress"},
        "job_id": _nullable("string", "this server's running reindex job, if any"),
        "last_run": _nullable("object", "the last index run: status (ok, failed, interrupted, running), "
                                        "finished_at (Unix time), error"),
        "advice": _nullable("string", "what to do when complete is false"),
    },
    "required": ["repo", "exists", "complete"],
}

_HIT = {
    "type": "object",
    "properties": {
        "repo": {"type": "string", "description": "the repository the hit is in"},
        "path": {"type": "string", "description": "POSIX path relative to the repository root"},
        "start_line": {"type": "integer", "description": "first line of the chunk (1-based)"},
        "end_line": {"type": "integer", "description": "last line of the chunk (inclusive)"},
        "symbol": {"type": "string", "description": "enclosing function/class name, '' if none"},
        "kind": {"type": "string", "description": "chunk kind (function, class, method, window, ...)"},
        "language": {"type": "string"},
        "score": {"type": "number", "description": "relevance; higher is better (meaning depends on mode)"},
        "content": {"type": "string", "description": "the chunk's source text (may be truncated)"},
    },
    "required": ["repo", "path", "start_line", "end_line", "score", "content"],
}

_HITS_OUTPUT = {
    "type": "object",
    "properties": {
        "hits": {"type": "array", "items": _HIT},
        "count": {"type": "integer"},
        "complete": {"type": "boolean", "description": "every searched repository's coverage is complete"},
        "coverage": {"type": "array", "items": _COVERAGE, "description": "one entry per searched repository"},
    },
    "required": ["hits", "count", "complete", "coverage"],
}

_JOB = {
    "type": "object",
    "properties": {
        "job_id": {"type": "string"},
        "repo": {"type": "string"},
        "state": {"type": "string", "enum": ["running", "succeeded", "failed", "interrupted"]},
        "full": {"type": "boolean"},
        "progress": _nullable("object", "files_seen, files_to_index, files_indexed, files_unchanged, "
                                        "files_deleted, chunks_embedded, chunks_written"),
        "summary": _nullable("object", "the run's JSON summary once it has finished"),
        "error": _nullable("object", "code, message and action when the job did not succeed"),
    },
    "required": ["job_id", "repo", "state"],
}

TOOLS: list[dict] = [
    {
        "name": "search_code",
        "title": "Search code",
        "description": (
            "Find code by meaning or by identifier: the first tool to use for 'where is X done' or 'find Y'. "
            "Returns the best-matching chunks (repo, path, line range, enclosing symbol, score, source), best "
            "first, and the index's coverage. mode: 'hybrid' (default; meaning + keywords), 'vector' (meaning "
            "only), 'text' (keywords; best for exact identifiers). Narrow with languages (['python']), paths "
            "(globs relative to the repository root: ['src/**']) and repos. Cost: about 10-100 ms once warm; "
            "the first call loads the model (a few seconds). If coverage.complete is false, results may miss "
            "recent edits: follow coverage.advice."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS,
                          "description": "what to look for: a description in words or an identifier"},
                "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10,
                      "description": f"number of hits to return (1-{MAX_K})"},
                "mode": {"type": "string", "enum": list(MODES), "default": "hybrid"},
                "languages": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_FILTERS,
                              "description": "only these languages (e.g. python, javascript, markdown)"},
                "paths": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_FILTERS,
                          "description": "only paths matching any of these globs or directories"},
                "repos": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_FILTERS,
                          "description": "only these repositories (default: all that the server serves)"},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "outputSchema": _HITS_OUTPUT,
        "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
    },
    {
        "name": "find_similar",
        "title": "Find similar code",
        "description": (
            "Find code that resembles the indexed chunk containing path:line (the chunk itself is left out): "
            "duplicates, other implementations of the same idea, related call sites. Use it after search_code "
            "or read_code has shown you a location. Cost: one vector query, about 10-50 ms; no model is loaded."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1,
                         "description": "file path relative to the repository root"},
                "line": {"type": "integer", "minimum": 1, "description": "a line inside the chunk (1-based)"},
                "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
                "repo": _REPO,
            },
            "required": ["path", "line"],
            "additionalProperties": False,
        },
        "outputSchema": _HITS_OUTPUT,
        "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
    },
    {
        "name": "read_code",
        "title": "Read code",
        "description": (
            "Read lines start_line..end_line (1-based, inclusive) of a file in a repository: use it to see the "
            "context around a hit. Paths are relative to the repository root; absolute paths, '..' and symlinks "
            f"leading out of the root are refused. At most {MAX_READ_LINES} lines or {MAX_READ_BYTES // 1024} KiB "
            "per call (the result says where to continue); end_line past the end of the file is clamped. Cost: "
            "one file read."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1,
                         "description": "file path relative to the repository root"},
                "start_line": {"type": "integer", "minimum": 1, "default": 1},
                "end_line": {"type": "integer", "minimum": 1,
                             "description": f"last line to read (inclusive); default: start_line + "
                                            f"{MAX_READ_LINES - 1}"},
                "repo": _REPO,
            },
            "required": ["path"],
            "additionalProperties": False,
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "repo": {"type": "string"}, "path": {"type": "string"}, "start_line": {"type": "integer"},
                "end_line": {"type": "integer"}, "total_lines": {"type": "integer"},
                "truncated": {"type": "boolean", "description": "more lines were asked than one call returns"},
                "content": {"type": "string"},
            },
            "required": ["repo", "path", "start_line", "end_line", "total_lines", "truncated", "content"],
        },
        "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
    },
    {
        "name": "index_status",
        "title": "Index status",
        "description": (
            "What is indexed and how fresh it is, per repository: the repository names, files indexed / skipped "
            "(with reasons) / failed, chunks, embedder, the last index run, stale files (changed since indexed: "
            "call reindex), a running job, and whether the server watches the tree. Use it when a search "
            "reports incomplete coverage or finds nothing. Cost: a walk of the tree (bounded to a few seconds)."
        ),
        "inputSchema": {"type": "object", "properties": {"repo": _REPO}, "additionalProperties": False},
        "outputSchema": {
            "type": "object",
            "properties": {
                "exists": {"type": "boolean", "description": "every listed repository has an index"},
                "complete": {"type": "boolean"},
                "repos": {"type": "array", "items": {"type": "object", "properties": {
                    "repo": {"type": "string"}, "root": {"type": "string"}, "exists": {"type": "boolean"},
                    "coverage": _COVERAGE}, "required": ["repo", "root", "exists", "coverage"]}},
            },
            "required": ["exists", "complete", "repos"],
        },
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
    {
        "name": "reindex",
        "title": "Re-index",
        "description": (
            "Bring a repository's index up to date in the background; returns a job_id at once: poll job_status "
            "until the state is no longer running. Use it when coverage or index_status reports stale files or "
            "no index. Incremental by default; full=true re-embeds everything. A running job for the repository is "
            "returned (reused=true) instead of starting another. Cost: the call returns at once; the job takes "
            "seconds for a few edited files, minutes for a full run of a large repository."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {"full": {"type": "boolean", "default": False,
                                    "description": "rebuild the whole index instead of updating it"},
                           "repo": _REPO},
            "additionalProperties": False,
        },
        "outputSchema": {
            "type": "object",
            "properties": {"job_id": {"type": "string"}, "repo": {"type": "string"}, "state": {"type": "string"},
                           "reused": {"type": "boolean"}, "full": {"type": "boolean"}},
            "required": ["job_id", "repo", "state", "reused"],
        },
        "annotations": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True,
                        "openWorldHint": False},
    },
    {
        "name": "job_status",
        "title": "Index job status",
        "description": (
            "Progress of a job that reindex started: state (running, succeeded, failed, interrupted), progress "
            "(files seen / to index / indexed, chunks embedded / written), and once finished the run's summary "
            "or its error (code, message, action). Poll it every second or two while the state is running. "
            "Cost: reads a small status file."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {"job_id": {"type": "string", "minLength": 1, "description": "the id reindex returned"}},
            "required": ["job_id"],
            "additionalProperties": False,
        },
        "outputSchema": _JOB,
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
]

TOOL_NAMES = frozenset(t["name"] for t in TOOLS)
TOOLS_BY_NAME = {t["name"]: t for t in TOOLS}
