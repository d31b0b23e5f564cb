#!/usr/bin/env python3
"""Search quality on real repositories: the code-search benchmark in ``../shared/codesearch-bench``.

Runs the benchmark's own ``score.py`` in place (the data is never copied into the project): it
unpacks each repository, indexes it with ``codesift index``, runs every human-written query with
``codesift search --batch --json -k 10`` and scores NDCG@10. Then, on the same indexes, one
hybrid run per ranking signal with that signal switched off (``--no-signal``, hidden), so each
signal's worth is measured (in one process, scored with score.py's own functions). Prints and writes to ``benchmarks/EVAL.md``: the per-repository
table, the per-category and per-language means, the reference (``reference_scores.json``) and
the ablation table.

    python benchmarks/codesearch.py                      # all 18 repositories (long: minilm)
    python benchmarks/codesearch.py --repo chi --repo sinatra --reuse --no-ablation

The benchmark is found at ``$CODESIFT_CODESEARCH_BENCH``, else ``<repo>/../shared/codesearch-bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CATEGORIES = ("semantic", "architecture", "symbol")
SEARCH_TIMEOUT_S = 3600


def bench_dir() -> Path:
    env = os.environ.get("CODESIFT_CODESEARCH_BENCH")
    path = Path(env) if env else REPO.parent / "shared" / "codesearch-bench"
    if not (path / "score.py").is_file() or not (path / "repos.json").is_file():
        sys.exit(f"codesearch benchmark not found in {path}: it should hold score.py, repos.json, "
                 "annotations/ and corpora/ (set CODESIFT_CODESEARCH_BENCH to its folder)")
    return path


def wrapper(work: Path, off: str | None) -> Path:
    """A ``codesift`` executable for score.py: this checkout's sources, this Python, and for
    ``search`` the ranking signal ``off`` switched off. ``-P``: score.py runs it inside each
    corpus, whose own modules (a ``warnings.py``) must not shadow the standard library's."""
    name = f"codesift-no-{off}" if off else "codesift"
    path = work / "bin" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = f' --no-signal {off}' if off else ""
    path.write_text("#!/bin/sh\n"
                    f'PYTHONPATH="{REPO / "src"}${{PYTHONPATH:+:$PYTHONPATH}}"; export PYTHONPATH\n'
                    f'if [ "$1" = search ]; then exec "{sys.executable}" -P -m codesift "$@"{extra}; fi\n'
                    f'exec "{sys.executable}" -P -m codesift "$@"\n', encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def indexed_chunks(manifest: Path) -> int | str:
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{manifest}?mode=ro", uri=True, timeout=5.0)
        try:
            return int(db.execute("SELECT COALESCE(SUM(chunk_count), 0) FROM files").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return "-"


def score(bench: Path, work: Path, label: str, repos: list[str], modes: str, *, reuse: bool,
          off: str | None, index_args: list[str]) -> tuple[list[dict], dict]:
    """score.py's per-repository rows and summary (its JSON lines on stdout)."""
    cmd = [sys.executable, str(bench / "score.py"), "--bench", str(bench), "--codesift", str(wrapper(work, off)),
           "--work", str(work), "--label", label, "--modes", modes]
    cmd += [a for r in repos for a in ("--repo", r)]
    cmd += ["--reuse"] if reuse else []
    cmd += ["--", *index_args] if index_args else []
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    # score.py bounds each of its own subprocesses (--timeout); this bounds the whole run
    n = len(repos) or 18
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=SEARCH_TIMEOUT_S * (n + 1))
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    rows = [x for x in lines if "repo" in x]
    summary = next((x for x in lines if "label" in x), {})
    if not rows:
        sys.exit(f"score.py produced no results (exit {p.returncode})")
    return rows, summary


def ablate(bench: Path, work: Path, label: str, repos: list[str], signals: dict[str, frozenset[str]]
           ) -> dict[str, list[dict]]:
    """Hybrid rows like score.py's, one set per ranking signal switched off, on score.py's
    indexes and unpacked corpora, scored by score.py's own ``ndcg10``. In one process: the
    model is loaded once instead of once per repository and signal."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("codesearch_score", bench / "score.py")
    scoring = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scoring)
    sys.path.insert(0, str(REPO / "src"))
    from codesift.search.engine import Searcher

    specs = {r["name"]: r for r in json.loads((bench / "repos.json").read_text())}
    runs: dict[str, list[dict]] = {sig: [] for sig in signals}
    for name in repos or sorted(specs):
        idx = work / "index" / label / name
        if not idx.exists():
            continue
        prefix = (specs[name].get("benchmark_root") or "").strip("/")
        top = work / "corpora" / name
        root = top / prefix if prefix else top
        present = {(prefix + "/" if prefix else "") + p.relative_to(root).as_posix()
                   for p in root.rglob("*") if p.is_file()}
        tasks = json.loads((bench / "annotations" / f"{name}.json").read_text())
        searcher = Searcher(root, idx)
        for sig, off in signals.items():
            searcher.disabled_signals = off
            answers = searcher.search_many([t["query"].replace("\n", " ") for t in tasks], k=10)
            scores, by_cat = [], {}
            for task, hits in zip(tasks, answers):
                hs = [{"path": (prefix + "/" if prefix else "") + h.path, "start_line": h.start_line,
                       "end_line": h.end_line} for h in hits]
                targets = [scoring.target_of(t) for t in task.get("relevant", []) + task.get("secondary", [])]
                v = scoring.ndcg10(hs, targets, present)
                scores.append(v)
                by_cat.setdefault(task.get("category", "?"), []).append(v)
            runs[sig].append({"repo": name, "language": specs[name]["language"],
                              "hybrid": sum(scores) / len(scores),
                              "hybrid_by_category": {c: sum(v) / len(v) for c, v in by_cat.items()}})
        print(f"ablation: {name} done", file=sys.stderr, flush=True)
    return runs


def mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def tables(rows: list[dict], modes: list[str]) -> str:
    ok = [r for r in rows if "error" not in r]
    out = ["| repository | language | chunks | " + " | ".join(modes) + " | reference |",
           "|---|---|---:|" + "---:|" * (len(modes) + 1)]
    for r in rows:
        out.append(f"| {r['repo']} | {r['language']} | {r.get('chunks', '-')} | "
                   + " | ".join(fmt(r.get(m)) for m in modes) + f" | {fmt(r.get('reference'))} |")
    out.append(f"| **mean** ({len(ok)}) | | | " + " | ".join(f"**{fmt(mean(r.get(m) for r in ok))}**" for m in modes)
               + f" | **{fmt(mean(r.get('reference') for r in ok))}** |")
    failed = [f"{r['repo']}: {r['error']}" for r in rows if "error" in r]
    if failed:
        out.append("\nFailed: " + "; ".join(failed))
    # per category: the reference publishes per-repository means only, so its column is the
    # mean of the reference over the repositories that have queries of the category
    out += ["", "| category | queries' repos | " + " | ".join(modes) + " | reference (same repos) |",
            "|---|---:|" + "---:|" * (len(modes) + 1)]
    for cat in CATEGORIES:
        has = [r for r in ok if cat in (r.get(f"{modes[0]}_by_category") or {})]
        out.append(f"| {cat} | {len(has)} | " + " | ".join(
            fmt(mean((r.get(f"{m}_by_category") or {}).get(cat) for r in has)) for m in modes)
            + f" | {fmt(mean(r.get('reference') for r in has))} |")
    out += ["", "| language | repos | " + " | ".join(modes) + " | reference | hybrid − reference |",
            "|---|---:|" + "---:|" * (len(modes) + 2)]
    langs: dict[str, list[dict]] = {}
    for r in ok:
        langs.setdefault(r["language"], []).append(r)
    for lang, rs in sorted(langs.items()):
        ref = mean(r.get("reference") for r in rs)
        hyb = mean(r.get(modes[0]) for r in rs)
        diff = None if ref is None or hyb is None else hyb - ref
        out.append(f"| {lang} | {len(rs)} | " + " | ".join(fmt(mean(r.get(m) for r in rs)) for m in modes)
                   + f" | {fmt(ref)} | {'-' if diff is None else f'{diff:+.3f}'} |")
    return "\n".join(out)


def ablation_table(base: list[dict], runs: dict[str, list[dict]]) -> str:
    def cats(rows):
        ok = [r for r in rows if "error" not in r]
        return [mean(r.get("hybrid") for r in ok)] + [
            mean((r.get("hybrid_by_category") or {}).get(c) for r in ok) for c in CATEGORIES]

    full = cats(base)
    out = ["| hybrid | NDCG@10 | Δ | " + " | ".join(CATEGORIES) + " |", "|---|---:|---:|" + "---:|" * len(CATEGORIES),
           "| all signals | " + fmt(full[0]) + " | | " + " | ".join(fmt(x) for x in full[1:]) + " |"]
    for name, rows in runs.items():
        v = cats(rows)
        d = None if v[0] is None or full[0] is None else v[0] - full[0]
        out.append(f"| without `{name}` | {fmt(v[0])} | {'-' if d is None else f'{d:+.3f}'} | "
                   + " | ".join(fmt(x) for x in v[1:]) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", action="append", default=[], help="only this repository (repeat)")
    ap.add_argument("--work", type=Path, default=HERE / ".work" / "codesearch", help="work dir (unpacked corpora, indexes)")
    ap.add_argument("--label", default="eval", help="names the index set under WORK/index/")
    ap.add_argument("--modes", default="hybrid,vector,text")
    ap.add_argument("--reuse", action="store_true", help="search existing indexes instead of rebuilding them")
    ap.add_argument("--no-ablation", action="store_true", help="skip the one-run-per-signal ablation")
    ap.add_argument("--output", type=Path, default=HERE / "EVAL.md", help="Markdown report ('-' for none)")
    ap.add_argument("index_args", nargs="*", help="extra arguments for codesift index (after --)")
    a = ap.parse_args()
    bench = bench_dir()
    work = a.work.resolve()
    modes = [m for m in a.modes.split(",") if m]
    if "hybrid" in modes:
        modes = ["hybrid"] + [m for m in modes if m != "hybrid"]
    t0 = time.monotonic()
    rows, _ = score(bench, work, a.label, a.repo, ",".join(modes), reuse=a.reuse, off=None, index_args=a.index_args)
    main_s = time.monotonic() - t0
    for r in rows:
        if r.get("chunks") is None:  # a reused index: score.py did not index it, its manifest counts them
            r["chunks"] = indexed_chunks(work / "index" / a.label / r["repo"] / "manifest.sqlite")
    report = tables(rows, modes)
    print(report)
    ablation = ""
    if not a.no_ablation and "hybrid" in modes:
        sys.path.insert(0, str(REPO / "src"))
        from codesift.search.ranking import SIGNALS

        runs = ablate(bench, work, a.label, a.repo,
                      {**{sig: frozenset([sig]) for sig in SIGNALS}, "every signal": frozenset(SIGNALS)})
        ablation = ablation_table(rows, runs)
        print("\n" + ablation)
    if str(a.output) != "-":
        from evalmd import write_section

        cmd = "python benchmarks/codesearch.py" + "".join(f" --repo {r}" for r in a.repo)
        text = ("## Code search on real repositories (NDCG@10)\n\n"
                f"`{cmd}` on {time.strftime('%Y-%m-%d')} ({main_s / 60:.0f} min for "
                + ("the modes, on existing indexes" if a.reuse else "indexing and the modes") + "): "
                "the benchmark of `../shared/codesearch-bench` (human-written queries over real repositories "
                "at pinned revisions, scored by its `score.py`), default embedder unless `--` arguments say "
                "otherwise. `reference`: the best published tool on this benchmark (semble, "
                "`reference_scores.json`). `vector` and `text` are the raw legs; `hybrid` is both legs "
                "through the ranking layer (`src/codesift/search/ranking/`).\n\n" + report + "\n")
        if ablation:
            text += ("\n### Ablation: each ranking signal switched off (hybrid, same indexes)\n\n" + ablation + "\n")
        write_section(a.output, "codesearch", text)
        print(f"wrote {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
