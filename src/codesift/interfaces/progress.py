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


def make_progress(enabled: bool):
    return RichProgress() if enabled else None
