"""The ``codesift`` command line.

Imports are deferred to the command that needs them: ``--help`` and a no-change
``index`` never import LanceDB or the model runtime. Every :class:`CodesiftError` is
rendered here, once, as the single line the user reads.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .. import config as C
from ..errors import CodesiftError, ConfigError

log = logging.getLogger("codesift")


def _add_index_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index-dir", metavar="DIR",
                   help=f"where the index lives (default: ROOT/{C.DEFAULT_INDEX_DIRNAME}, or ${C.INDEX_DIR_ENV})")


def _add_deadline_options(p: argparse.ArgumentParser) -> None:
    """One ``--*-timeout SECONDS`` option per deadline of :class:`~codesift.config.Deadlines`."""
    for name, flag, default, text in C.Deadlines.cli_options():
        p.add_argument(flag, dest=f"deadline_{name}", type=float, default=default, metavar="SECONDS",
                       help=f"{text} (default {default:g})")


def _deadlines(args) -> C.Deadlines:
    return C.Deadlines(**{name: getattr(args, f"deadline_{name}") for name, *_ in C.Deadlines.cli_options()})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codesift", description="Local-first semantic code search: index a codebase, search it by meaning.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("init", help="create an empty index for a tree")
    p.add_argument("root", nargs="?", default=".")
    _add_index_dir(p)
    p.add_argument("--embedder", default="minilm")

    p = sub.add_parser("index", help="index a tree (incremental by default)")
    p.add_argument("root", nargs="?", default=".")
    _add_index_dir(p)
    from ..embedding.options import EMBEDDER_HELP, add_embedder_arguments

    p.add_argument("--embedder", default=None,
                   help=EMBEDDER_HELP + "; default: the embedder of an unfinished rebuild, else the index's, "
                                        "else init's choice, else minilm")
    add_embedder_arguments(p)
    p.add_argument("--full", action="store_true", help="rebuild everything")
    p.add_argument("--strict", action="store_true", help="exit 3 if any file could not be read, decoded or parsed")
    p.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    p.add_argument("--wait", nargs="?", type=float, const=C.DEFAULT_LOCK_WAIT_S, default=None, metavar="SECONDS",
                   help=f"wait for another writer to finish (default {C.DEFAULT_LOCK_WAIT_S:g}s) instead of failing")
    p.add_argument("--max-file-size", default=str(C.DEFAULT_MAX_FILE_SIZE), metavar="SIZE")
    p.add_argument("--batch-size", type=int, default=C.DEFAULT_BATCH_SIZE)
    p.add_argument("--retries", type=int, default=C.DEFAULT_RETRIES)
    _add_deadline_options(p)
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="RSS limit, e.g. 512MB or 2GiB (default: 75%% of the cgroup or machine memory)")
    p.add_argument("--threads", type=int, default=0, help="embedder threads (default: the CPUs available)")
    p.add_argument("--backoff", type=float, default=0.5, metavar="SECONDS", help="first retry backoff")
    p.add_argument("--no-embed-cache", action="store_true",
                   help="embed every chunk, even text whose vector is cached")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default) or ray (needs: pip install 'codesift[ray]')")
    p.add_argument("--ray-address", default=None, metavar="ADDR", help="join this Ray cluster (default: start a local one)")
    p.add_argument("--workers", type=int, default=0, help="Ray embed workers (default: from the cluster's CPUs)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G")

    from ..search.command import add_search_arguments, add_similar_arguments

    p = sub.add_parser("search", help="search the index by meaning and keyword")
    add_search_arguments(p)
    _add_index_dir(p)

    p = sub.add_parser("similar", help="find code similar to the chunk at PATH:LINE")
    add_similar_arguments(p)
    _add_index_dir(p)

    from .mcp_command import add_mcp_arguments
    from .watch_command import add_watch_arguments

    p = sub.add_parser("mcp", help="serve the index to AI assistants over MCP")
    add_mcp_arguments(p)
    _add_index_dir(p)

    p = sub.add_parser("watch", help="keep the index fresh while files change")
    add_watch_arguments(p)
    _add_index_dir(p)

    p = sub.add_parser("status", help="what is indexed, skipped, and running")
    p.add_argument("root", nargs="?", default=".")
    _add_index_dir(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("verify", help="check the index against the tree and the manifest")
    p.add_argument("root", nargs="?", default=".")
    _add_index_dir(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("models", help="the embedders available on this machine, and how to add more")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("doctor", help="check the environment")
    p.add_argument("root", nargs="?", default=".")
    _add_index_dir(p)
    return parser


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("codesift: %(levelname)s: %(message)s"))
    root = logging.getLogger("codesift")
    root.handlers[:] = [handler]
    root.setLevel(level)


def _root_and_index(args) -> tuple[Path, Path]:
    root = Path(getattr(args, "root", ".")).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"not a directory: {args.root}")
    return root, C.resolve_index_dir(root, args.index_dir)


def cmd_index(args) -> int:
    from ..pipeline.supervisor import run_index

    root, index_dir = _root_and_index(args)
    from ..embedding.options import embedder_spec_from_args

    embedder = embedder_spec_from_args(
        args.embedder or _index_embedder(index_dir) or _initial_embedder(index_dir), args)
    cfg = C.IndexConfig(
        root=root, index_dir=index_dir, embedder=embedder, full=args.full, strict=args.strict,
        max_file_size=C.parse_size(args.max_file_size), batch_size=args.batch_size, retries=args.retries,
        deadlines=_deadlines(args),
        memory_limit=C.parse_size(args.memory_limit) if args.memory_limit else C.default_memory_limit(),
        lock_wait_s=args.wait, threads=args.threads,
        backoff_base_s=args.backoff, engine=args.engine, ray_address=args.ray_address, workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        embed_cache=not args.no_embed_cache,
    )
    from .progress import make_progress

    progress = make_progress(tty=sys.stderr.isatty())
    try:
        result = run_index(cfg, on_tick=progress.tick if progress else None)
    finally:
        if progress:
            progress.close()
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        from .render import render_index_summary

        render_index_summary(summary, sys.stderr)
    if result.error is not None:
        print(f"codesift: error: {result.error.one_line()}", file=sys.stderr)
    elif result.exit_code == 3:
        print(f"codesift: error: --strict: {len(result.strict_problems)} file problem(s), "
              f"first: {result.strict_problems[0]['path']}", file=sys.stderr)
    return result.exit_code


def _index_embedder(index_dir: Path) -> str | None:
    """The embedder spec of an unfinished rebuild (so a plain ``index`` resumes it), else of
    the current generation; None for a new index or one that cannot be read."""
    from ..errors import StoreError
    from ..inspection._common import open_manifest
    from ..store.generations import read_state
    from ..store.layout import IndexLayout

    layout = IndexLayout(index_dir)
    if not layout.exists():
        return None
    state = read_state(layout)
    for source in (state.pending, state.current or layout):
        if source is None or not source.manifest.is_file():
            continue
        try:
            m = open_manifest(source)
        except StoreError:
            continue  # unreadable here: the run itself reports it
        try:
            spec = m.meta().get("spec")
        finally:
            m.close()
        if spec:
            return spec
    return None


def _initial_embedder(index_dir: Path) -> str:
    """The embedder ``init`` chose for this index, else the default."""
    try:
        return json.loads((index_dir / "config.json").read_text()).get("embedder", "minilm")
    except (OSError, ValueError):
        return "minilm"


def cmd_init(args) -> int:
    from ..store.layout import IndexLayout

    root, index_dir = _root_and_index(args)
    layout = IndexLayout(index_dir)
    layout.ensure()
    (index_dir / "config.json").write_text(json.dumps({"embedder": args.embedder}, indent=1) + "\n")
    print(f"initialised an index for {root} at {index_dir} (embedder {args.embedder}); run: codesift index")
    return 0


def cmd_search(args) -> int:
    from ..search.command import run_search

    root, index_dir = _root_and_index(args)
    return run_search(args, root, index_dir)


def cmd_similar(args) -> int:
    from ..search.command import run_similar

    root, index_dir = _root_and_index(args)
    return run_similar(args, root, index_dir)


def cmd_mcp(args) -> int:
    from .mcp_command import run_mcp

    return run_mcp(args)  # several ROOTs: it resolves each root and index itself


def cmd_watch(args) -> int:
    from .watch_command import run_watch

    root, index_dir = _root_and_index(args)
    return run_watch(args, root, index_dir)


def cmd_status(args) -> int:
    from ..inspection.status import collect_status, render_status

    root, index_dir = _root_and_index(args)
    report = collect_status(root, index_dir)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render_status(report, sys.stdout)
    return 0


def cmd_verify(args) -> int:
    from ..inspection.verify import render_verify, verify_index

    root, index_dir = _root_and_index(args)
    report = verify_index(root, index_dir)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render_verify(report, sys.stdout)
    return 0 if report["consistent"] else 1


def cmd_doctor(args) -> int:
    from ..inspection.doctor import run_doctor

    root, index_dir = _root_and_index(args)
    ok = True
    for check in run_doctor(root, index_dir):
        mark = "ok  " if check["ok"] else "FAIL"
        ok = ok and check["ok"]
        print(f"{mark} {check['name']}: {check['detail']}")
    return 0 if ok else 1


def cmd_models(args) -> int:
    from ..embedding.catalog import collect_models, render_models

    report = collect_models()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render_models(report, sys.stdout)
    return 0


COMMANDS = {"init": cmd_init, "index": cmd_index, "search": cmd_search, "similar": cmd_similar,
            "status": cmd_status, "verify": cmd_verify, "doctor": cmd_doctor, "mcp": cmd_mcp,
            "watch": cmd_watch, "models": cmd_models}


def main(argv: list[str] | None = None) -> int:
    import faulthandler
    import signal

    # `kill -USR1 PID` dumps every thread's stack to stderr: a hang is diagnosable.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    _limit_malloc_arenas()  # before any thread starts
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        code = COMMANDS[args.command](args)
        if args.command == "index":
            _exit_now(code)
        return code
    except CodesiftError as exc:
        print(f"codesift: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("codesift: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


_M_ARENA_MAX = -8  # glibc's mallopt parameter for the most malloc arenas (malloc.h)


def _limit_malloc_arenas() -> bool:
    """Let glibc's malloc use one arena per CPU (at least 2) instead of 8 per CPU.

    Each thread that meets a locked arena gets a new one, and memory freed in one arena is
    not reused by the others: with the pipeline's threads, the full index of the CPython
    corpus peaked at 601 MB with glibc's default and 548 MB with 2 arenas on 2 CPUs, in the
    same time (409 s against 396 s). The CLI owns its process, so it sets this once, before
    its threads start; the Python API leaves its caller's process as it is. A
    ``MALLOC_ARENA_MAX`` in the environment wins. False where the C library has no
    ``mallopt`` (not glibc): its own policy stands.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 2
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return mallopt(_M_ARENA_MAX, max(2, cpus)) == 1


def _exit_now(code: int) -> None:
    """Leave without interpreter finalization once everything is committed and printed.

    A failed run may leave an abandoned daemon thread still running (say, importing
    LanceDB for a table that was never needed); finalizing the interpreter under it
    can crash the process (seen: SIGSEGV after a correct summary). The index is
    durable and every file is closed at this point, so there is nothing left to run.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
