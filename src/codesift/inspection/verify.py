"""``codesift verify``: check the index against the working tree and the manifest.

The report lists every inconsistency found, by kind (each list capped at
:data:`CAP` entries; ``totals`` has the full counts):

``missing``          files in the tree (not ignored) that the manifest does not know
``stale``            manifest records the tree no longer matches (content changed, file
                     deleted, or now refused for another reason)
``orphans``          rows the manifest does not vouch for (path not ``indexed``, or
                     another ``file_hash`` than the manifest's)
``duplicates``       ids present more than once; distinct rows with one (path, lines)
``count_mismatch``   indexed files whose row count differs from ``chunk_count``
``content_mismatch`` rows whose ``content`` is not exactly their lines of the file
                     (checked for files whose content still hashes as indexed)
``missing_vectors``  null vectors, vectors of the wrong length, non-finite values
``coverage_gaps``    non-blank lines of those same files that no row covers
``pending``          journal entries left by an interrupted (or running) write
``query_tables``     files whose rows in the manifest's query tables (the light search
                     path's copy) differ from the chunk table's vouched rows: other ids,
                     other content, vectors of the wrong size; or an ANN index
                     that cannot be read (path ``manifest.sqlite (q_ann)``)

``consistent`` is true when every list is empty.

Verify may run while an index run writes. The manifest is read before and after the
chunk table is scanned; a path that is journalled, or whose record changed between
the two reads, was being written during the check and is only reported as
``pending`` (when journalled), never as an inconsistency. Vectors are scanned in
batches, so memory stays bounded by the table's non-vector columns.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import IO

from ..models import FileEntry, SkippedFile
from ..pipeline.stages import file_hash
from ..store.manifest import STATUS_INDEXED, STATUS_SKIPPED, FileRecord
from ..text import decode, line_slice, split_lines
from ._common import open_manifest, require_index

CAP = 50
UNLIMITED = 1 << 40
VECTOR_BATCH = 4096
KEYS = ("missing", "stale", "orphans", "duplicates", "count_mismatch", "content_mismatch",
        "missing_vectors", "coverage_gaps", "pending", "query_tables")
_META_COLUMNS = ["id", "path", "start_line", "end_line", "content", "file_hash"]


class _Lists:
    """Capped issue lists with full counts."""

    def __init__(self) -> None:
        self.items: dict[str, list[dict]] = {k: [] for k in KEYS}
        self.totals: dict[str, int] = {k: 0 for k in KEYS}

    def add(self, key: str, entry: dict) -> None:
        self.totals[key] += 1
        if len(self.items[key]) < CAP:
            self.items[key].append(entry)


def _read_bytes(abspath: str) -> bytes:
    fd = os.open(abspath, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        parts = []
        while True:
            block = os.read(fd, 1 << 20)
            if not block:
                break
            parts.append(block)
        return b"".join(parts)
    finally:
        os.close(fd)


def _ranges(numbers: list[int]) -> list[list[int]]:
    """[1, 2, 3, 7] → [[1, 3], [7, 7]]."""
    out: list[list[int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def _open_store(layout):
    """The chunk store, or None when no table was ever written (lancedb is not imported then)."""
    if not layout.lancedb.exists():
        return None
    from ..store.chunks import ChunkStore

    store = ChunkStore(layout.lancedb)
    return store if store.table is not None else None


def _vector_batches(store, columns: list[str]):
    return store.scan_batches(columns, VECTOR_BATCH)


def _check_vectors(store, expected_dim: int | None, flux: set[str], lists: _Lists) -> None:
    import numpy as np
    import pyarrow as pa

    table_dim = store.dim()
    if expected_dim is not None and table_dim is not None and table_dim != expected_dim:
        lists.add("missing_vectors", {"path": None, "id": None, "rows": store.count(),
                                      "reason": f"table vectors have {table_dim} dimensions, "
                                                f"the manifest says {expected_dim}"})
    dim = expected_dim or table_dim
    for batch in _vector_batches(store, ["id", "path", "vector"]):
        if batch.num_rows == 0:
            continue
        ids = batch.column("id").to_pylist()
        paths = batch.column("path").to_pylist()
        col = batch.column("vector")
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        n = len(col)
        nulls = col.is_null().to_numpy(zero_copy_only=False)
        bad_len = np.zeros(n, dtype=bool)
        if pa.types.is_fixed_size_list(col.type):
            size = col.type.list_size
            values = col.values.slice(col.offset * size, n * size)
            arr = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False).reshape(n, size)
            finite = np.isfinite(arr).all(axis=1) if size else np.ones(n, dtype=bool)
        else:  # a variable-length list column: check each row
            rows = col.to_pylist()
            finite = np.ones(n, dtype=bool)
            for i, v in enumerate(rows):
                if v is None:
                    continue
                if dim is not None and len(v) != dim:
                    bad_len[i] = True
                elif not np.isfinite(np.asarray([np.nan if x is None else x for x in v], dtype=np.float64)).all():
                    finite[i] = False
        bad = np.nonzero(nulls | bad_len | ~finite)[0]
        for i in bad:
            if paths[i] in flux:
                continue
            reason = ("null vector" if nulls[i] else
                      f"vector length differs from {dim}" if bad_len[i] else "non-finite values")
            lists.add("missing_vectors", {"path": paths[i], "id": ids[i], "reason": reason})


def verify_index(root: Path, index_dir: Path) -> dict:
    t0 = time.monotonic()
    root, index_dir = Path(root), Path(index_dir)
    layout = require_index(index_dir, "verify")
    lists = _Lists()
    from ..store.generations import read_state

    # Resolve the current generation once: a rebuild swapping it mid-check must not make
    # the manifest and the table come from two generations.
    current = read_state(layout).current
    source = current if current is not None else layout

    manifest = open_manifest(source)
    try:
        pending1 = set(manifest.pending_paths())
        files1 = manifest.files()
        meta = manifest.meta()
        store = _open_store(source)
        if store is not None:
            table = store.scan(_META_COLUMNS)
            cols = {c: table.column(c).to_pylist() for c in _META_COLUMNS}
            del table
        else:
            cols = {c: [] for c in _META_COLUMNS}
        try:
            expected_dim = int(meta["dim"]) if meta.get("dim") else None
        except ValueError:
            expected_dim = None
        query_rows = manifest.query_rows()
        ann_problem = manifest.ann_problem(expected_dim) if query_rows is not None else None
        # Vectors are checked later, once we know which paths were in flux; remember the store.
        files2 = manifest.files()
        pending2 = set(manifest.pending_paths())
    finally:
        manifest.close()

    flux = pending1 | pending2
    for p in set(files1) | set(files2):
        if files1.get(p) != files2.get(p):
            flux.add(p)

    for p in sorted(pending1 | pending2):
        lists.add("pending", {"path": p})

    writer_active = False
    try:
        from ..store.lock import WriterLock

        writer_active = WriterLock(layout.lock).is_held_elsewhere()
    except OSError:
        pass

    # -- the working tree against the manifest ------------------------------------------
    from ..discovery import discover

    tree: dict[str, FileEntry | SkippedFile] = {}
    for item in discover(root, index_dir=index_dir, max_file_size=UNLIMITED):
        tree[item.path] = item

    for path in sorted(tree):
        if path not in files1 and path not in flux:
            item = tree[path]
            entry = {"path": path}
            if isinstance(item, SkippedFile):
                entry["reason"] = f"refused by discovery: {item.reason}"
            lists.add("missing", entry)

    current_lines: dict[str, list[str]] = {}  # indexed files whose content still hashes as indexed
    for path in sorted(files1):
        if path in flux:
            continue
        rec = files1[path]
        item = tree.get(path)
        reason = _stale_reason(rec, item, current_lines)
        if reason:
            lists.add("stale", {"path": path, "status": rec.status, "reason": reason})

    # -- rows against the manifest -------------------------------------------------------
    ids, paths, starts, ends = cols["id"], cols["path"], cols["start_line"], cols["end_line"]
    contents, hashes = cols["content"], cols["file_hash"]
    by_path: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(paths):
        by_path[p].append(i)

    for path in sorted(by_path):
        if path in flux:
            continue
        idx = by_path[path]
        rec = files1.get(path)
        if rec is None:
            lists.add("orphans", {"path": path, "rows": len(idx), "reason": "path not in the manifest"})
        elif rec.status != STATUS_INDEXED:
            lists.add("orphans", {"path": path, "rows": len(idx), "reason": f"manifest records it as {rec.status}"})
        else:
            wrong = sum(1 for i in idx if hashes[i] != rec.file_hash)
            if wrong:
                lists.add("orphans", {"path": path, "rows": wrong,
                                      "reason": "file_hash differs from the manifest's"})

    for path, rec in sorted(files1.items()):
        if rec.status == STATUS_INDEXED and path not in flux:
            actual = len(by_path.get(path, ()))
            if actual != rec.chunk_count:
                lists.add("count_mismatch", {"path": path, "expected": rec.chunk_count, "actual": actual})

    id_counts = Counter(ids)
    for rid, n in sorted((k, v) for k, v in id_counts.items() if v > 1):
        i = ids.index(rid)
        if paths[i] not in flux:
            lists.add("duplicates", {"kind": "id", "id": rid, "path": paths[i], "count": n})
    spans: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(paths):
        spans[(p, starts[i], ends[i])].append(i)
    for (p, s, e), idx in sorted(spans.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2] or 0)):
        if len(idx) > 1 and p not in flux and len({ids[i] for i in idx}) > 1:
            lists.add("duplicates", {"kind": "lines", "path": p, "start_line": s, "end_line": e,
                                     "count": len(idx)})

    # -- rows against the files they came from ---------------------------------------------
    for path in sorted(current_lines):
        rec = files1[path]
        lines = current_lines[path]
        covered = bytearray(len(lines))
        for i in by_path.get(path, ()):
            if hashes[i] != rec.file_hash:
                continue  # already an orphan
            s, e = starts[i], ends[i]
            if s is None or e is None or s < 1 or e < s or e > len(lines):
                lists.add("content_mismatch", {"path": path, "id": ids[i], "start_line": s, "end_line": e,
                                               "reason": f"line range outside the file ({len(lines)} lines)"})
                continue
            covered[s - 1 : e] = b"\1" * (e - s + 1)
            if contents[i] != line_slice(lines, s, e):
                lists.add("content_mismatch", {"path": path, "id": ids[i], "start_line": s, "end_line": e,
                                               "reason": "content differs from those lines of the file"})
        gaps = [n + 1 for n, line in enumerate(lines) if not covered[n] and line.strip()]
        if gaps:
            ranges = _ranges(gaps)
            lists.add("coverage_gaps", {"path": path, "lines": len(gaps), "ranges": ranges[:10]})

    if store is not None:
        _check_vectors(store, expected_dim, flux, lists)
    if query_rows is not None:
        vouched = [i for i, p in enumerate(paths)
                   if (rec := files1.get(p)) is not None and rec.status == STATUS_INDEXED
                   and hashes[i] == rec.file_hash]
        _check_query_tables(query_rows, [ids[i] for i in vouched], [paths[i] for i in vouched],
                            [contents[i] for i in vouched], store.dim() if store is not None else expected_dim,
                            flux, lists)
    if ann_problem is not None:
        lists.add("query_tables", {"path": "manifest.sqlite (q_ann)", "reason": ann_problem})

    counts = {
        "tree_files": len(tree),
        "manifest_files": len(files1),
        "indexed": sum(1 for r in files1.values() if r.status == STATUS_INDEXED),
        "skipped": sum(1 for r in files1.values() if r.status == STATUS_SKIPPED),
        "error": sum(1 for r in files1.values() if r.status not in (STATUS_INDEXED, STATUS_SKIPPED)),
        "rows": len(ids),
        "expected_rows": sum(r.chunk_count for r in files1.values() if r.status == STATUS_INDEXED),
        "content_checked": len(current_lines),
        "in_flux": len(flux),
    }
    report: dict = {
        "root": str(root),
        "index_dir": str(index_dir),
        "generation": current.name if current is not None else None,
        "consistent": not any(lists.totals.values()),
        "writer_active": writer_active,
        "counts": counts,
        "totals": dict(lists.totals),
    }
    report.update(lists.items)
    report["elapsed_s"] = round(time.monotonic() - t0, 3)
    return report


def _check_query_tables(query_rows, ids, paths, contents, dim, flux, lists: _Lists) -> None:
    """The query tables must hold exactly the chunk table's vouched rows (ids, content;
    orphans are reported as such), with vectors of the table's dimension (float16)."""
    table: dict[str, dict[str, str]] = defaultdict(dict)
    for i, p in enumerate(paths):
        table[p][ids[i]] = contents[i]
    copy: dict[str, dict[str, str]] = defaultdict(dict)
    bad_vectors: dict[str, int] = Counter()
    for rid, p, content, width in query_rows:
        copy[p][rid] = content
        if dim is not None and width != 2 * dim:  # None: no vector at all
            bad_vectors[p] += 1
    for path in sorted(set(table) | set(copy)):
        if path in flux:
            continue
        have, want = copy.get(path, {}), table.get(path, {})
        if set(have) != set(want):
            lists.add("query_tables", {"path": path, "reason": f"{len(have)} row(s) in the query tables, "
                                                               f"{len(want)} in the chunk table (other ids)"})
        elif any(have[i] != want[i] for i in want):
            lists.add("query_tables", {"path": path, "reason": "content differs from the chunk table's"})
        elif bad_vectors.get(path):
            lists.add("query_tables", {"path": path,
                                       "reason": f"{bad_vectors[path]} vector(s) missing or of the wrong size"})


def _stale_reason(rec: FileRecord, item, current_lines: dict[str, list[str]]) -> str | None:
    """Why the manifest record no longer matches the tree (None when it does).

    For an indexed file whose content still hashes as indexed, its decoded lines are
    stored in ``current_lines`` for the row checks.
    """
    if item is None:
        return "deleted from the tree"
    if isinstance(item, SkippedFile):
        if rec.status == STATUS_SKIPPED and rec.reason == item.reason:
            return None
        return f"now refused by discovery: {item.reason}"
    same_stat = rec.size == item.size and rec.mtime_ns == item.mtime_ns
    if rec.status != STATUS_INDEXED:
        if same_stat:
            return None
        if not rec.file_hash:
            return f"changed since it was recorded as {rec.status}"
        try:
            digest = file_hash(_read_bytes(item.abspath))
        except OSError as exc:
            return f"unreadable now: {exc.strerror or exc}"
        return None if digest == rec.file_hash else f"content changed since it was recorded as {rec.status}"
    try:
        data = _read_bytes(item.abspath)
    except OSError as exc:
        return f"unreadable now: {exc.strerror or exc}"
    digest = file_hash(data)
    if digest != rec.file_hash:
        if same_stat:
            return "content changed but size and mtime did not (an incremental run will not see it; use --full)"
        return "content changed since it was indexed"
    try:
        text = decode(data)
    except UnicodeDecodeError:  # cannot happen for a file that was indexed with this hash
        return "no longer decodes as UTF-8"
    current_lines[rec.path] = split_lines(text)
    return None


# -- rendering -----------------------------------------------------------------------------

_TITLES = {
    "missing": "in the tree, not in the index",
    "stale": "changed since indexed",
    "orphans": "rows the manifest does not vouch for",
    "duplicates": "duplicate rows",
    "count_mismatch": "row count differs from the manifest",
    "content_mismatch": "row content differs from the file",
    "missing_vectors": "bad vectors",
    "coverage_gaps": "non-blank lines in no chunk",
    "pending": "journal entries of an unfinished write",
    "query_tables": "the search copy differs from the chunk table",
}


def _line(key: str, e: dict) -> str:
    path = e.get("path") or "-"
    if key in ("missing", "stale"):
        return f"{path}" + (f": {e['reason']}" if e.get("reason") else "")
    if key == "orphans":
        return f"{path}: {e['rows']} row(s), {e['reason']}"
    if key == "duplicates":
        if e["kind"] == "id":
            return f"{path}: id {e['id']} x{e['count']}"
        return f"{path}:{e['start_line']}-{e['end_line']} x{e['count']}"
    if key == "count_mismatch":
        return f"{path}: {e['actual']} row(s), manifest says {e['expected']}"
    if key == "content_mismatch":
        return f"{path}:{e['start_line']}-{e['end_line']}: {e['reason']}"
    if key == "missing_vectors":
        return f"{path}: {e['reason']}" + (f" (id {e['id']})" if e.get("id") else "")
    if key == "query_tables":
        return f"{path}: {e['reason']}"
    if key == "coverage_gaps":
        spans = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in e["ranges"])
        return f"{path}: {e['lines']} line(s) ({spans})"
    return path


def render_verify(report: dict, out: IO[str]) -> None:
    c = report["counts"]
    summary = (f"{c['tree_files']} files in the tree, {c['indexed']} indexed, {c['rows']} rows, "
               f"{c['content_checked']} files checked against their content, in {report['elapsed_s']:.2f}s")
    if report.get("writer_active"):
        out.write("note: an index run is writing; files it is changing were left out of the check\n")
    if report["consistent"]:
        out.write(f"index consistent: {summary}\n")
        return
    problems = sum(report["totals"].values())
    out.write(f"index INCONSISTENT ({problems} problem(s)): {summary}\n")
    for key in KEYS:
        total = report["totals"][key]
        if not total:
            continue
        out.write(f"{key} ({total}): {_TITLES[key]}\n")
        for e in report[key]:
            out.write(f"  {_line(key, e)}\n")
        if total > len(report[key]):
            out.write(f"  ... and {total - len(report[key])} more\n")
    if report["totals"]["query_tables"]:
        out.write("hint: searches still read the chunk table's rows through the query tables; "
                  "`codesift index --full` rebuilds both\n")
    if report["totals"]["pending"] and not report.get("writer_active"):
        out.write("hint: the next `codesift index` run repairs interrupted writes\n")
