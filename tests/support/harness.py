"""Drive the real ``codesift`` CLI in a subprocess and read the index it leaves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
FAULTS = "python:support.faults:"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def summary(self) -> dict:
        return json.loads(self.stdout)


def sample_tree(root: Path, files: int = 12) -> Path:
    """A small mixed-language tree with enough code for several embed batches."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        body = "\n".join(
            f"def function_{i}_{j}(value):\n    '''Return value scaled by {j}.'''\n"
            f"    total = value * {j}\n    return total + {i}\n"
            for j in range(8)
        )
        (root / f"mod_{i:02d}.py").write_text(f"import os\n\nCONSTANT_{i} = {i}\n\n{body}\n")
    (root / "README.md").write_text("# Sample\n\nSome prose.\n\n## Usage\n\nRun it.\n")
    (root / "util.js").write_text("function add(a, b) {\n  return a + b;\n}\n\nconst x = add(1, 2);\n")
    return root


class Codesift:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "repo"
        self.index_dir = tmp / "index"

    def env(self, **extra: str) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
        env.pop("CODESIFT_INDEX_DIR", None)
        env["CODESIFT_RESIDENT"] = "off"  # no resident search processes (tests/test_resident.py turns it on)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "codesift", *args]

    def index_args(self, embedder: str, *extra: str) -> list[str]:
        return self.argv("index", str(self.root), "--index-dir", str(self.index_dir), "--embedder", embedder,
                         "--json", "--backoff", "0.01", *extra)

    def run(self, args: list[str], *, timeout: float = 60, env: dict | None = None, preexec=None) -> Run:
        t0 = time.monotonic()
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env or self.env(),
                           preexec_fn=preexec)
        return Run(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)

    def index(self, embedder: str = FAULTS + "clean", *extra: str, timeout: float = 60, **env: str) -> Run:
        return self.run(self.index_args(embedder, *extra), timeout=timeout, env=self.env(**env))

    def popen(self, embedder: str, *extra: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(self.index_args(embedder, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env(**env))

    def verify(self) -> tuple[int, dict]:
        r = self.run(self.argv("verify", str(self.root), "--index-dir", str(self.index_dir), "--json"))
        return r.code, json.loads(r.stdout) if r.stdout.strip() else {}

    def rows(self, index_dir: Path | None = None) -> list[tuple]:
        """Every row of the chunks table as (id, path, start, end, content), sorted."""
        from codesift.store.chunks import ChunkStore

        store = ChunkStore((index_dir or self.index_dir) / "lancedb")
        t = store.scan(["id", "path", "start_line", "end_line", "content"])
        return sorted(zip(*(t.column(c).to_pylist() for c in ("id", "path", "start_line", "end_line", "content"))))

    def clean_rows(self) -> list[tuple]:
        """Rows of a clean, fault-free run over the current tree, in a separate index."""
        other = self.tmp / f"clean-index-{time.monotonic_ns()}"
        r = self.run(self.argv("index", str(self.root), "--index-dir", str(other), "--embedder", FAULTS + "clean",
                               "--json"))
        assert r.code == 0, r.stderr
        return self.rows(other)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll ``predicate`` until true or the deadline; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def live_status(index_dir: Path) -> dict | None:
    try:
        return json.loads((index_dir / "live-status.json").read_text())
    except (OSError, ValueError):
        return None


def send(proc: subprocess.Popen, sig: int) -> None:
    os.kill(proc.pid, sig)


__all__ = ["Codesift", "Run", "sample_tree", "wait_for", "live_status", "send", "FAULTS", "signal"]
