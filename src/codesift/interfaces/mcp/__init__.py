"""The codesift MCP server: tools over the index of one or more repositories.

* :mod:`.schemas`: the tools as clients see them (descriptions, input/output schemas).
* :mod:`.errors`: tool error codes, each with the one action an agent should take.
* :mod:`.service`: the tools themselves, protocol-free; coverage and freshness of results;
  deadlines and cancellation of a call.
* :mod:`.jobs`: ``reindex`` jobs, subprocesses stopped through the pipeline's shutdown path.
* :mod:`.stdio` / :mod:`.http`: the two transports.

Nothing heavy is imported at start-up: LanceDB and the model runtime load on the first
search (in the thread serving it), and indexing runs in a subprocess.
"""

from .errors import ACTIONS, ToolError
from .service import Call, CodesiftService, Repo, repo_names, run_tool

__all__ = ["ACTIONS", "Call", "CodesiftService", "Repo", "ToolError", "repo_names", "run_tool"]
