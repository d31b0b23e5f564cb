"""Tests for codesift.inspection: verify, status, doctor.

Indexes are built directly with the store APIs (small vectors), so each test controls
exactly which inconsistency the index holds.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from codesift.errors import NoIndexError
from codesift.inspection.doctor import run_doctor
from codesift.inspection.status import collect_status, render_status
from codesift.inspection.verify import CAP, KEYS, render_verify, verify_index
from codesift.models import Chunk
from codesift.pipeline.stages import file_hash
from codesift.store.layout import IndexLayout
from codesift.store.manifest import STATUS_ERROR, STATUS_INDEXED, STATUS_SKIPPED, FileRecord, Manifest
from codesift.store.query_tables import QueryRows
from codesift.store.schema import build_rows
from codesift.text import line_slice, split_lines

DIM = 8

FILES = {
    "a.py": "def a():\n    return 1\n\n\ndef b():\n    return 2\n",
    "pkg/b.py": "import os\n\nX = 1\nY = 2\nZ = 3\n",
    "README.md": "# title\n\nsome words\n",
}


def _chunks(path: str, text: str, size: int = 2) -> list[Chunk]:
    """Windows of ``size`` lines covering every line (blank-only windows dropped)."""
    lines = split_lines(text)
    out = []
    for s in range(1, len(lines) + 1, size):
        e = min(len(lines), s + size - 1)
        content = line_slice(lines, s, e)
        if content.strip():
            out.append(Chunk(path, "python", "", "block", s, e, content))
    return out


class Index:
    """A tree plus an index built from it with the store APIs."""

    def __init__(self, tmp_path: Path, files: dict[str, str] = FILES) -> None:
        from codesift.store.chunks import ChunkStore

        self.root = tmp_path / "tree"
        self.index_dir = tmp_path / "idx"
        for rel, text in files.items():
            self.write(rel, text)
        self.layout = IndexLayout(self.index_dir)
        self.layout.ensure()
        self.manifest = Manifest(self.layout.manifest)
        self.manifest.set_meta(embedder="test", dim=str(DIM))
        self.store = ChunkStore(self.layout.lancedb)
        self.store.ensure_table(DIM)
        for rel in files:
            self.index_file(rel)

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def index_file(self, rel: str, chunks: list[Chunk] | None = None, vectors=None) -> None:
        p = self.root / rel
        data = p.read_bytes()
        digest = file_hash(data)
        if chunks is None:
            chunks = _chunks(rel, data.decode())
        if vectors is None:
            vectors = np.ones((len(chunks), DIM), dtype=np.float32)
        self.manifest.begin_write([rel])
        rows = build_rows([(chunks, digest, vectors)], DIM)
        self.store.replace([rel], rows)
        st = p.stat()
        self.manifest.commit_files([FileRecord(rel, st.st_size, st.st_mtime_ns, digest, len(chunks),
                                               STATUS_INDEXED, None, "python", time.time())],
                                   replaced=[rel], rows=QueryRows.from_arrow(rows))

    def add_rows(self, rel: str, chunks: list[Chunk], digest: str) -> None:
        """Rows the manifest knows nothing about."""
        self.store.replace([], build_rows([(chunks, digest, np.ones((len(chunks), DIM)))], DIM))

    def verify(self) -> dict:
        return verify_index(self.root, self.index_dir)


def only(report: dict, *keys: str) -> None:
    """Exactly the issue kinds ``keys`` are reported."""
    assert {k for k in KEYS if report["totals"][k]} == set(keys), {k: report[k] for k in KEYS if report[k]}
    assert report["consistent"] is (not keys)


@pytest.fixture
def index(tmp_path):
    return Index(tmp_path)


# -- verify ----------------------------------------------------------------------------


def test_consistent_index_verifies_clean(index):
    report = index.verify()
    only(report)
    c = report["counts"]
    assert c["indexed"] == 3 and c["tree_files"] == 3 and c["content_checked"] == 3
    assert c["rows"] == c["expected_rows"] > 0
    out = io.StringIO()
    render_verify(report, out)
    assert out.getvalue().startswith("index consistent")
    json.dumps(report)


def test_no_index_raises(tmp_path):
    (tmp_path / "tree").mkdir()
    with pytest.raises(NoIndexError):
        verify_index(tmp_path / "tree", tmp_path / "idx")
    with pytest.raises(NoIndexError):
        collect_status(tmp_path / "tree", tmp_path / "idx")


def test_orphan_rows(index):
    index.add_rows("ghost.py", [Chunk("ghost.py", "python", "", "block", 1, 1, "x\n")], "h")
    # rows of a known file with another file_hash than the manifest's
    index.add_rows("a.py", [Chunk("a.py", "python", "", "block", 1, 1, "def a():\n")], "otherhash")
    report = index.verify()
    only(report, "orphans", "count_mismatch")
    orphans = {o["path"]: o for o in report["orphans"]}
    assert orphans["ghost.py"]["reason"] == "path not in the manifest"
    assert "file_hash" in orphans["a.py"]["reason"]
    assert report["count_mismatch"] == [{"path": "a.py", "expected": 2, "actual": 3}]


def test_rows_of_a_skipped_file_are_orphans(index):
    index.write("bin.dat", "x")
    st = (index.root / "bin.dat").stat()
    index.manifest.commit_files([FileRecord("bin.dat", st.st_size, st.st_mtime_ns, "", 0, STATUS_SKIPPED,
                                            "binary file", None, time.time())])
    index.add_rows("bin.dat", [Chunk("bin.dat", "text", "", "block", 1, 1, "x")], "")
    report = index.verify()
    only(report, "orphans")
    assert "skipped" in report["orphans"][0]["reason"]


def test_duplicate_rows(index):
    text = FILES["pkg/b.py"]
    index.add_rows("pkg/b.py", _chunks("pkg/b.py", text)[:1], file_hash(text.encode()))
    report = index.verify()
    only(report, "duplicates", "count_mismatch")
    assert report["duplicates"][0]["kind"] == "id" and report["duplicates"][0]["count"] == 2


def test_duplicate_lines_with_distinct_ids(index):
    # Same (path, start, end) under two ids: only possible with an id not derived as usual.
    import pyarrow as pa

    text = FILES["pkg/b.py"]
    rows = build_rows([(_chunks("pkg/b.py", text)[:1], file_hash(text.encode()), np.ones((1, DIM)))], DIM)
    rows = rows.set_column(0, "id", pa.array(["not-the-usual-id"], type=pa.string()))
    index.store.replace([], rows)
    report = index.verify()
    assert any(d["kind"] == "lines" and d["path"] == "pkg/b.py" for d in report["duplicates"])


def test_content_mismatch(index):
    text = FILES["a.py"]
    chunks = _chunks("a.py", text)
    bad = Chunk("a.py", "python", "", "block", chunks[0].start_line, chunks[0].end_line, "def edited():\n")
    outside = Chunk("a.py", "python", "", "block", 50, 60, "x\n")
    index.index_file("a.py", [bad, outside] + chunks[1:])
    report = index.verify()
    only(report, "content_mismatch")
    reasons = sorted(e["reason"] for e in report["content_mismatch"])
    assert "content differs" in reasons[0] and "outside the file" in reasons[1]


def test_editing_a_file_makes_it_stale_not_mismatched(index):
    index.write("a.py", FILES["a.py"] + "\ndef c():\n    return 3\n")
    report = index.verify()
    only(report, "stale")
    assert report["stale"][0]["path"] == "a.py"
    assert report["stale"][0]["reason"] == "content changed since it was indexed"


def test_touch_without_change_is_not_stale(index):
    p = index.root / "a.py"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 5_000_000_000))
    only(index.verify())


def test_same_stat_different_content_is_stale(index):
    p = index.root / "pkg/b.py"
    st = p.stat()
    p.write_text(FILES["pkg/b.py"].replace("X = 1", "X = 9"))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    report = index.verify()
    only(report, "stale")
    assert "size and mtime did not" in report["stale"][0]["reason"]


def test_deleted_file_is_stale(index):
    (index.root / "README.md").unlink()
    report = index.verify()
    only(report, "stale")
    assert report["stale"][0] == {"path": "README.md", "status": "indexed", "reason": "deleted from the tree"}


def test_missing_file_and_ignored_file(index):
    index.write("new.py", "x = 1\n")
    index.write(".gitignore", "build/\n*.log\n")
    index.write("build/out.py", "y = 2\n")
    index.write("debug.log", "z\n")
    report = index.verify()
    only(report, "missing")
    assert sorted(m["path"] for m in report["missing"]) == [".gitignore", "new.py"]


def test_skipped_and_error_records_are_not_missing(index):
    index.write("big.bin", "x" * 100)
    index.write("bad.txt", "y")
    recs = []
    for rel, status in (("big.bin", STATUS_SKIPPED), ("bad.txt", STATUS_ERROR)):
        st = (index.root / rel).stat()
        recs.append(FileRecord(rel, st.st_size, st.st_mtime_ns, "", 0, status, "why", None, time.time()))
    index.manifest.record_outcomes(recs)
    only(index.verify())
    index.write("big.bin", "x" * 200)  # changed since skipped: the next run must look again
    report = index.verify()
    only(report, "stale")
    assert report["stale"][0]["path"] == "big.bin"


def test_coverage_gap(index):
    text = FILES["pkg/b.py"]  # lines: import os / blank / X / Y / Z
    lines = split_lines(text)
    chunks = [Chunk("pkg/b.py", "python", "", "block", 1, 3, line_slice(lines, 1, 3)),
              Chunk("pkg/b.py", "python", "", "block", 5, 5, line_slice(lines, 5, 5))]
    index.index_file("pkg/b.py", chunks)
    report = index.verify()
    only(report, "coverage_gaps")
    assert report["coverage_gaps"] == [{"path": "pkg/b.py", "lines": 1, "ranges": [[4, 4]]}]


def test_blank_lines_need_no_coverage(index):
    text = "\n\nx = 1\n\n\n"
    index.write("blank.py", text)
    index.index_file("blank.py", [Chunk("blank.py", "python", "", "block", 3, 3, "x = 1\n")])
    only(index.verify())


def test_pending_journal_entry(index):
    index.manifest.begin_write(["a.py"])
    report = index.verify()
    only(report, "pending")
    assert report["pending"] == [{"path": "a.py"}]
    out = io.StringIO()
    render_verify(report, out)
    assert "pending (1)" in out.getvalue()


def test_bad_vectors(index):
    text = FILES["a.py"]
    chunks = _chunks("a.py", text)
    vectors = np.ones((len(chunks), DIM), dtype=np.float32)
    vectors[0, 3] = np.inf
    vectors[1, 0] = -np.inf
    try:
        index.index_file("a.py", chunks, vectors)
    except ValueError:  # lancedb refuses NaN on add; infinities may pass
        pytest.skip("the chunk table refuses non-finite vectors")
    report = index.verify()
    only(report, "missing_vectors")
    assert {v["reason"] for v in report["missing_vectors"]} == {"non-finite values"}
    assert report["totals"]["missing_vectors"] == 2


def test_null_vector(index):
    import pyarrow as pa

    text = FILES["a.py"]
    chunks = _chunks("a.py", text)[:1]
    rows = build_rows([(chunks, file_hash(text.encode()), np.ones((1, DIM)))], DIM)
    vec = pa.array([None], type=rows.schema.field("vector").type)
    rows = rows.set_column(rows.schema.get_field_index("vector"), rows.schema.field("vector"), vec)
    try:
        index.store.replace(["a.py"], rows)
    except Exception:  # the table schema may refuse a null vector: nothing to test then
        pytest.skip("the chunk table refuses null vectors")
    st = (index.root / "a.py").stat()
    index.manifest.commit_files([FileRecord("a.py", st.st_size, st.st_mtime_ns, file_hash(text.encode()), 1,
                                            STATUS_INDEXED, None, "python", time.time())])
    report = index.verify()
    assert {v["reason"] for v in report["missing_vectors"]} == {"null vector"}


def test_dim_mismatch_is_reported(index):
    index.manifest.set_meta(dim="16")
    report = index.verify()
    only(report, "missing_vectors")
    assert "dimensions" in report["missing_vectors"][0]["reason"]


def test_lists_are_capped_with_full_counts(index):
    for i in range(CAP + 5):
        index.write(f"many/f{i:03}.py", "x\n")
    report = index.verify()
    assert len(report["missing"]) == CAP and report["totals"]["missing"] == CAP + 5
    out = io.StringIO()
    render_verify(report, out)
    assert "... and 5 more" in out.getvalue()


def test_manifest_without_chunk_table(tmp_path):
    root, index_dir = tmp_path / "tree", tmp_path / "idx"
    root.mkdir()
    layout = IndexLayout(index_dir)
    layout.ensure()
    Manifest(layout.manifest).close()
    report = verify_index(root, index_dir)
    only(report)
    status = collect_status(root, index_dir)
    assert status["files"] == {"indexed": 0, "skipped": 0, "error": 0} and status["last_run"] is None


# -- status ----------------------------------------------------------------------------


def test_status_fields(index):
    index.write("big.bin", "x")
    st = (index.root / "big.bin").stat()
    index.manifest.record_outcomes([FileRecord("big.bin", st.st_size, st.st_mtime_ns, "", 0, STATUS_SKIPPED,
                                               "binary file", None, time.time())])
    index.manifest.commit_files([FileRecord("a.py", 1, 1, "h", 2, STATUS_INDEXED, "parse fallback", "python",
                                            time.time())])
    run_id = index.manifest.start_run()
    index.manifest.finish_run(run_id, "ok", {"duration_s": 1.5, "error": None, "files": {"indexed": 3}})
    index.manifest.begin_write(["pkg/b.py"])
    report = collect_status(index.root, index.index_dir)
    for key in ("root", "index_dir", "embedder", "files", "chunks", "languages", "index_size_bytes",
                "last_run", "skipped", "notes", "pending", "running"):
        assert key in report
    assert report["embedder"] == {"name": "test", "dim": DIM}
    assert report["files"] == {"indexed": 3, "skipped": 1, "error": 0}
    assert report["languages"] == {"python": 3}
    assert report["index_size_bytes"] > 0
    assert report["last_run"]["status"] == "ok" and report["last_run"]["duration_s"] == 1.5
    assert report["skipped"] == [{"path": "big.bin", "status": "skipped", "reason": "binary file"}]
    assert report["notes"] == [{"path": "a.py", "note": "parse fallback"}]
    assert report["pending"] == ["pkg/b.py"]
    assert report["running"] is None
    json.dumps(report)
    out = io.StringIO()
    render_status(report, out)
    text = out.getvalue()
    assert "3 indexed, 1 skipped" in text and "big.bin: binary file" in text


def test_status_shows_a_live_run(index):
    live = {"pid": os.getpid(), "state": "running", "started_at": time.time(), "updated_at": time.time(),
            "files": {"seen": 3, "to_index": 3, "indexed": 1}, "chunks": {"written": 2},
            "rss_bytes": 1 << 20, "queues": {"read": 1}, "stages": {"read": {"state": "busy", "items": 1}}}
    index.layout.live_status.write_text(json.dumps(live))
    report = collect_status(index.root, index.index_dir)
    assert report["running"]["pid"] == os.getpid()
    assert report["running"]["stages"]["read"]["state"] == "busy"
    out = io.StringIO()
    render_status(report, out)
    assert "running" in out.getvalue() and "queues" in out.getvalue()


def test_status_does_not_import_lancedb(index):
    code = ("import sys; from pathlib import Path; from codesift.inspection.status import collect_status; "
            f"collect_status(Path({str(index.root)!r}), Path({str(index.index_dir)!r})); "
            "print('lancedb' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# -- doctor ----------------------------------------------------------------------------


def _check_shape(checks):
    assert checks and all(set(c) == {"name", "ok", "detail"} for c in checks)
    assert all(isinstance(c["detail"], str) and "\n" not in c["detail"] for c in checks)


def test_doctor_checks(tmp_path, monkeypatch):
    import codesift.embedding as embedding

    monkeypatch.setattr(embedding, "load_embedder", lambda spec: embedding.registry.load_embedder("hash"))
    checks = run_doctor(tmp_path, tmp_path / "idx")
    _check_shape(checks)
    names = [c["name"] for c in checks]
    for name in ("python", "model", "lancedb", "sqlite", "index dir writable", "disk space", "writer lock"):
        assert name in names
    by = {c["name"]: c for c in checks}
    assert by["python"]["ok"] and by["model"]["ok"] and by["index dir writable"]["ok"] and by["sqlite"]["ok"]
    assert by["writer lock"]["ok"]
    assert list(tmp_path.iterdir()) == []  # the writability probe left nothing behind


def test_doctor_survives_failures(tmp_path, monkeypatch):
    import codesift.chunking as chunking
    import codesift.embedding as embedding

    def boom(*a, **k):
        raise RuntimeError("model file missing\nsecond line")

    monkeypatch.setattr(embedding, "load_embedder", boom)
    monkeypatch.setattr(chunking, "available_grammars", lambda: {"python": None, "rust": "OSError: no .so"})
    blocker = tmp_path / "file"
    blocker.write_text("x")  # the "index dir" is below a regular file: not creatable
    checks = run_doctor(tmp_path, blocker / "idx")
    _check_shape(checks)
    by = {c["name"]: c for c in checks}
    assert not by["model"]["ok"] and "model file missing second line" in by["model"]["detail"]
    assert by["grammar python"]["ok"] and not by["grammar rust"]["ok"]
    assert not by["index dir writable"]["ok"]

    monkeypatch.setattr(chunking, "available_grammars", boom)
    checks = run_doctor(tmp_path, tmp_path / "idx")
    _check_shape(checks)
    assert any(c["name"] == "grammars" and not c["ok"] for c in checks)


def test_doctor_reports_a_held_lock(tmp_path):
    from codesift.store.lock import WriterLock

    idx = tmp_path / "idx"
    idx.mkdir()
    code = ("import sys, time; from pathlib import Path; from codesift.store.lock import WriterLock; "
            f"l = WriterLock(Path({str(idx / 'writer.lock')!r})); l.acquire(); print('held', flush=True); "
            "time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert WriterLock(idx / "writer.lock").is_held_elsewhere()
        from codesift.inspection.doctor import _lock

        assert f"pid {proc.pid}" in _lock(idx)
    finally:
        proc.kill()
        proc.wait()


def test_readonly_manifest_falls_back_to_a_normal_connection(index, monkeypatch):
    import codesift.inspection._common as common
    from codesift.errors import StoreError

    real = common.Manifest

    def fake(path, *, readonly=False, **kw):
        if readonly:
            raise StoreError("cannot open read-only", stage="store")
        return real(path, **kw)

    monkeypatch.setattr(common, "Manifest", fake)
    only(index.verify())
    assert collect_status(index.root, index.index_dir)["files"]["indexed"] == 3
