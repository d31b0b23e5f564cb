"""``codesift watch`` as a subprocess: edits become searchable, failures are survived, SIGINT ends it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support.harness import TESTS, sample_tree

pytest.importorskip("watchfiles")
pytestmark = pytest.mark.timeout(180)

FAILING_EMBEDDER = '''
import os
from codesift.embedding.hashing import HashEmbedder


class Flaky(HashEmbedder):
    """Fails every embed call while the flag file exists."""

    def __init__(self):
        super().__init__(64)

    def embed(self, texts):
        if os.path.exists(os.environ["FLAKY_FLAG"]):
            raise RuntimeError("embedder is down (injected)")
        return super().embed(texts)


def make():
    return Flaky()
'''


class Watch:
    """A running ``codesift watch`` with its stderr collected on a thread."""

    def __init__(self, tmp: Path, root: Path, *args: str, env: dict | None = None) -> None:
        self.root = root
        self.index_dir = tmp / "index"
        self.env = env or _env()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codesift", "watch", str(root), "--index-dir", str(self.index_dir), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout: float = 30.0, start: int = 0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, line in enumerate(self.lines[start:], start):
                if text in line:
                    return i
            assert self.proc.poll() is None, f"watch exited early:\n" + "\n".join(self.lines)
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {timeout}s:\n" + "\n".join(self.lines))

    def search(self, query: str) -> list[dict]:
        r = subprocess.run([sys.executable, "-m", "codesift", "search", query, "--root", str(self.root),
                            "--index-dir", str(self.index_dir), "--json", "-k", "3"],
                           capture_output=True, text=True, timeout=60, env=self.env)
        if r.returncode != 0:
            return []
        return json.loads(r.stdout)

    def wait_findable(self, query: str, path: str, timeout: float = 10.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if any(h["path"] == path for h in self.search(query)):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise AssertionError(f"{path} not found for {query!r} within {timeout}s:\n" + "\n".join(self.lines))

    def interrupt(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._t.join(5)
        self.proc.stdout.close()


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *extra.pop("_paths", []), env.get("PYTHONPATH", "")])
    env.pop("CODESIFT_INDEX_DIR", None)
    env.update(extra)
    return env


def test_edit_becomes_searchable_and_sigint_stops(tmp_path):
    root = sample_tree(tmp_path / "repo", files=4)
    (root / ".gitignore").write_text("build/\n*.log\n")
    w = Watch(tmp_path, root, "--embedder", "hash", "--debounce", "50")
    try:
        w.wait_for_line("watching", 30)
        w.wait_for_line("file(s) indexed", 60)  # the initial cycle
        mark = len(w.lines)
        (root / "mod_01.py").write_text("def zebra_stripes_painter(brush):\n    return brush * 2\n")
        saved = time.monotonic()
        latency = w.wait_findable("zebra stripes painter", "mod_01.py", timeout=10)
        print(f"edit findable {time.monotonic() - saved:.2f}s after the save (search poll {latency:.2f}s)")
        w.wait_for_line("changed: mod_01.py", 10, start=mark)

        # A new file, then its deletion.
        (root / "pkg").mkdir()
        (root / "pkg" / "new_mod.py").write_text("def walrus_tusk_length():\n    return 3\n")
        w.wait_findable("walrus tusk length", "pkg/new_mod.py", timeout=10)
        mark = len(w.lines)
        (root / "pkg" / "new_mod.py").unlink()
        deadline = time.monotonic() + 10
        while any(h["path"] == "pkg/new_mod.py" for h in w.search("walrus tusk length")):
            assert time.monotonic() < deadline, "deleted file still found"
            time.sleep(0.1)
        w.wait_for_line("1 deleted", 10, start=mark)  # that cycle has ended (its line comes after the commit)

        # Ignored paths and the index directory trigger no cycle.
        mark = len(w.lines)
        (root / "build").mkdir()
        (root / "build" / "out.py").write_text("x = 1\n")
        (root / "debug.log").write_text("noise\n")
        time.sleep(1.0)
        assert not [ln for ln in w.lines[mark:] if "indexed" in ln or "failed" in ln], w.lines[mark:]

        code = w.interrupt(15)
        assert code == 0, w.lines
        assert any("watch: stopped" in ln for ln in w.lines)
    finally:
        w.close()


def test_failing_cycle_is_reported_and_watch_goes_on(tmp_path):
    root = sample_tree(tmp_path / "repo", files=2)
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "flaky_embedder.py").write_text(FAILING_EMBEDDER)
    flag = tmp_path / "embedder-down"
    env = _env(_paths=[str(mods)], FLAKY_FLAG=str(flag))
    w = Watch(tmp_path, root, "--embedder", "python:flaky_embedder:make", "--debounce", "50", env=env)
    try:
        w.wait_for_line("file(s) indexed", 60)
        flag.write_text("down")
        mark = len(w.lines)
        (root / "mod_00.py").write_text("def narwhal_horn_polisher():\n    return 1\n")
        i = w.wait_for_line("cycle failed", 30, start=mark)
        assert "embedder is down" in w.lines[i] and "still watching" in w.lines[i]
        assert w.proc.poll() is None
        flag.unlink()  # the embedder recovers: the retry (or the next change) indexes the file
        w.wait_findable("narwhal horn polisher", "mod_00.py", timeout=15)
        (root / "mod_01.py").write_text("def okapi_tongue_length():\n    return 2\n")
        w.wait_findable("okapi tongue length", "mod_01.py", timeout=10)
        assert w.interrupt(15) == 0
    finally:
        w.close()


def test_sigint_during_a_cycle_ends_in_bounded_time(tmp_path):
    root = sample_tree(tmp_path / "repo", files=30)
    env = _env(FAULT_DELAY_S="0.3")
    w = Watch(tmp_path, root, "--embedder", "python:support.faults:slow", env=env)
    try:
        w.wait_for_line("watching", 30)
        time.sleep(1.5)  # the initial cycle is embedding slowly now
        t0 = time.monotonic()
        code = w.interrupt(20)
        assert code == 0, w.lines
        assert time.monotonic() - t0 < 20
    finally:
        w.close()


def test_change_filter(tmp_path):
    from codesift.watching import ChangeFilter

    root = tmp_path / "repo"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / ".git" / "info").mkdir(parents=True)
    (root / ".gitignore").write_text("node_modules/\n*.tmp\n")
    (root / "sub" / ".gitignore").write_text("gen_*.py\n!gen_keep.py\n")
    (root / ".git" / "info" / "exclude").write_text("secret.py\n")
    f = ChangeFilter(root, root / ".codesift")
    r = str(root.resolve())
    assert f.matters(f"{r}/a.py")
    assert f.matters(f"{r}/sub/deep/b.py")
    assert not f.matters(f"{r}/node_modules/x/y.js")
    assert not f.matters(f"{r}/a.tmp")
    assert not f.matters(f"{r}/sub/gen_a.py")
    assert f.matters(f"{r}/sub/gen_keep.py")
    assert not f.matters(f"{r}/secret.py")
    assert not f.matters(f"{r}/.git/index")
    assert not f.matters(f"{r}/.codesift/manifest.sqlite")
    assert f.matters(f"{r}/sub/.gitignore")
    assert not f.matters(str(tmp_path / "elsewhere.py"))
