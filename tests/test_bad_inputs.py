"""Bad input through the CLI: every odd file gets a recorded reason, never a crash or silence."""

from __future__ import annotations

import os

import pytest
from support.harness import FAULTS


@pytest.fixture
def nasty(cs):
    root = cs.root
    root.mkdir()
    (root / "ok.py").write_text("def fine():\n    return 1\n")
    (root / "binary.py").write_bytes(b"\x00\x01\x02 binary " * 100)
    (root / "latin1.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    (root / "huge.txt").write_text("word " * 300_000)  # 1.5 MB
    os.mkfifo(root / "x.py")
    (root / "loop").symlink_to(root / "loop")
    (root / "dirloop").mkdir()
    (root / "dirloop" / "back").symlink_to(root)
    outside = cs.tmp / "outside.py"
    outside.write_text("SECRET = 1\n")
    (root / "escape.py").symlink_to(outside)
    deep = root
    for i in range(60):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "deep.py").write_text("def deepest():\n    return 'bottom'\n")
    (root / "empty.py").write_text("")
    (root / "blank.md").write_text("\n\n   \n")
    (root / "crlf.py").write_bytes(b"def crlf():\r\n    return 'windows'\r\n\r\nX = 1\r\n")
    (root / "bom.py").write_bytes("\ufeffdef bom():\n    return 'marked'\n".encode("utf-8"))
    (root / "nested.py").write_text("x = " + "[" * 3000 + "]" * 3000 + "\n")
    return cs


def test_bad_inputs_are_recorded_with_reasons_and_the_rest_is_indexed(nasty):
    r = nasty.index(FAULTS + "clean", timeout=60)
    assert r.code == 0, r.stderr
    s = r.summary
    reasons = {item["path"]: item["reason"] for item in s["files"]["skipped"]}
    assert reasons["binary.py"].startswith("binary file")
    assert reasons["latin1.py"].startswith("undecodable")
    assert reasons["huge.txt"].startswith("larger than the 1.0 MiB limit")
    assert reasons["x.py"] == "not a regular file (FIFO)"
    assert reasons["loop"] == "symlink loop"
    assert reasons["escape.py"] == "symlink points outside the root"
    assert "dirloop/back" in reasons

    rows = nasty.rows()
    by_path = {}
    for _id, path, start, end, content in rows:
        by_path.setdefault(path, []).append((start, end, content))
    assert set(by_path) == {"ok.py", "crlf.py", "bom.py", "nested.py", "/".join(f"d{i}" for i in range(60)) + "/deep.py"}
    assert by_path["crlf.py"][0][2].startswith("def crlf():\r\n")  # exact lines, endings kept
    assert by_path["bom.py"][0][2].startswith("def bom():")  # the BOM is not content
    assert "empty.py" not in by_path and "blank.md" not in by_path

    code, report = nasty.verify()
    assert code == 0, report

    # the reasons persist: status shows them without re-reading anything
    st = nasty.run(nasty.argv("status", str(nasty.root), "--index-dir", str(nasty.index_dir), "--json"))
    assert st.code == 0
    import json

    shown = {item["path"]: item["reason"] for item in json.loads(st.stdout)["skipped"]}
    assert shown["x.py"] == "not a regular file (FIFO)" and shown["latin1.py"].startswith("undecodable")

    again = nasty.index(FAULTS + "clean")
    assert again.code == 0
    assert again.summary["chunks"]["written"] == 0
    assert {i["path"] for i in again.summary["files"]["skipped"]} >= {"binary.py", "x.py", "latin1.py"}


def test_strict_exits_3_on_file_problems(nasty):
    r = nasty.index(FAULTS + "clean", "--strict")
    assert r.code == 3
    assert "--strict" in r.stderr and "latin1.py" in r.stderr
    assert r.summary["status"] == "ok"  # everything that could be indexed was


def test_parse_deadline_falls_back_to_line_windows_and_is_recorded(cs):
    cs.root.mkdir()
    big = "".join(f"def f{i}(a, b):\n    return (a + b) * {i}\n\n" for i in range(4000))
    (cs.root / "big.py").write_text(big)
    r = cs.index(FAULTS + "clean", "--parse-timeout", "0.0001")
    assert r.code == 0, r.stderr
    notes = {n["path"]: n["note"] for n in r.summary["files"]["notes"]}
    assert "parse deadline" in notes.get("big.py", ""), (r.summary, r.stderr)
    code, report = cs.verify()
    assert code == 0, report  # every line still covered
    strict = cs.index(FAULTS + "clean", "--strict", "--full", "--parse-timeout", "0.0001")
    assert strict.code == 3


def test_unchanged_bad_file_that_becomes_good_is_indexed(nasty):
    assert nasty.index(FAULTS + "clean").code == 0
    (nasty.root / "latin1.py").write_text("x = 'cafe'\n")
    r = nasty.index(FAULTS + "clean")
    assert r.code == 0
    assert "latin1.py" in {row[1] for row in nasty.rows()}
    assert "latin1.py" not in {i["path"] for i in r.summary["files"]["skipped"]}
