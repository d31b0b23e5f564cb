"""Progress on a TTY (rich), nothing elsewhere (plain log lines come from logging)."""

from __future__ import annotations

import time


class RichProgress:
    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(stderr=True)
        self._live = Live(console=self._console, refresh_per_second=2, transient=True)
        self._live.start()
        self._t0 = time.monotonic()

    def tick(self, snap: dict) -> None:
        from rich.table import Table

        files, chunks = snap["files"], snap["chunks"]
        elapsed = max(1e-6, time.monotonic() - self._t0)
        rate = chunks["embedded"] / elapsed
        todo = files["to_index"] - files["indexed"]
        done = max(1, files["indexed"])
        eta = (elapsed / done) * todo if files["indexed"] else None
        t = Table.grid(padding=(0, 2))
        t.add_row(
            f"files {files['indexed']}/{files['to_index']} new or changed ({files['seen']} seen)",
            f"chunks {chunks['embedded']} ({rate:.0f}/s)",
            f"ETA {eta:.0f}s" if eta is not None else "ETA -",
            "queues " + " ".join(f"{k}={v}" for k, v in snap["queues"].items()),
            f"RSS {snap['rss_bytes'] / (1 << 20):.0f} MiB",
        )
        self._live.update(t)

    def close(self) -> None:
        self._live.stop()


class PlainProgress:
    """One log line every ``interval_s`` seconds, for logs and CI (no TTY)."""

    def __init__(self, interval_s: float = 10.0) -> None:
        import sys

        self._out = sys.stderr
        self._interval = interval_s
        self._t0 = time.monotonic()
        self._last = self._t0

    def tick(self, snap: dict) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        files, chunks = snap["files"], snap["chunks"]
        rate = chunks["embedded"] / max(1e-6, now - self._t0)
        self._out.write(
            f"codesift: progress: {files['indexed']}/{files['to_index']} files indexed ({files['seen']} seen), "
            f"{chunks['embedded']} chunks embedded ({rate:.0f}/s), {chunks['written']} written, "
            f"queues {snap['queues']}, RSS {snap['rss_bytes'] / (1 << 20):.0f} MiB\n")
        self._out.flush()

    def close(self) -> None:
        pass


def make_progress(tty: bool):
    """A rich display on a terminal, plain periodic lines elsewhere."""
    return RichProgress() if tty else PlainProgress()
