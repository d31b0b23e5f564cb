"""Run configuration as frozen values with safe defaults: every deadline is on."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

DEFAULT_INDEX_DIRNAME = ".codesift"
INDEX_DIR_ENV = "CODESIFT_INDEX_DIR"

DEFAULT_MAX_FILE_SIZE = 1 << 20
DEFAULT_EMBED_TIMEOUT_S = 120.0
DEFAULT_WRITE_TIMEOUT_S = 120.0
DEFAULT_QUEUE_TIMEOUT_S = 600.0
DEFAULT_MEMORY_WAIT_TIMEOUT_S = 60.0
DEFAULT_PARSE_TIMEOUT_S = 10.0
DEFAULT_STALL_TIMEOUT_S = 300.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 3
DEFAULT_BATCH_SIZE = 16
DEFAULT_LOCK_WAIT_S = 600.0

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1 << 10, "ki": 1 << 10,
    "m": 1000**2, "mb": 1000**2, "mib": 1 << 20, "mi": 1 << 20,
    "g": 1000**3, "gb": 1000**3, "gib": 1 << 30, "gi": 1 << 30,
    "t": 1000**4, "tb": 1000**4, "tib": 1 << 40, "ti": 1 << 40,
}


def parse_size(text: str | int) -> int:
    """``"512MB"`` → 512_000_000, ``"2GiB"`` → 2_147_483_648, ``1024`` → 1024."""
    if isinstance(text, int):
        return text
    m = _SIZE_RE.match(str(text))
    if not m or (m.group(2) or "").lower() not in _UNITS:
        raise ConfigError(f"not a size: {text!r} (use e.g. 512MB, 2GiB, 1048576)")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def default_memory_limit() -> int:
    """75% of the cgroup memory limit, or of the machine's memory when there is none."""
    total = None
    for p in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(p).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < (1 << 60):
            total = int(raw)
            break
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            total = 8 << 30
    return int(total * 0.75)


def resolve_index_dir(root: Path, index_dir: str | Path | None = None) -> Path:
    """``--index-dir`` beats ``CODESIFT_INDEX_DIR`` beats ``<root>/.codesift``."""
    chosen = index_dir or os.environ.get(INDEX_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser().resolve()
    return (root / DEFAULT_INDEX_DIRNAME).resolve()


@dataclass(frozen=True)
class IndexConfig:
    root: Path
    index_dir: Path
    embedder: str = "minilm"
    full: bool = False
    strict: bool = False
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    batch_size: int = DEFAULT_BATCH_SIZE
    retries: int = DEFAULT_RETRIES
    embed_timeout_s: float = DEFAULT_EMBED_TIMEOUT_S
    write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S
    queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S
    parse_timeout_s: float = DEFAULT_PARSE_TIMEOUT_S
    memory_limit: int = field(default_factory=default_memory_limit)
    memory_wait_timeout_s: float = DEFAULT_MEMORY_WAIT_TIMEOUT_S
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    lock_wait_s: float | None = None  # None: fail at once when locked
    backoff_base_s: float = 0.5
    backoff_max_s: float = 10.0
    breaker_threshold: int = 5
    write_batch_chunks: int = 512
    write_interval_s: float = 2.0
    threads: int = 0  # 0: let the embedder choose
    embed_cache: bool = True  # reuse vectors of identical chunk text (per embedder)
    engine: str = "local"  # local | ray
    ray_address: str | None = None  # None: start a local Ray
    workers: int = 0  # Ray embed actors (0: one per 2 CPUs of the cluster, at least 1)
    gpus_per_worker: float = 0.0
    job_timeout_s: float = 24 * 3600.0  # wall-clock deadline of a whole Ray job

    def __post_init__(self) -> None:
        for name in ("embed_timeout_s", "write_timeout_s", "queue_timeout_s", "parse_timeout_s",
                     "memory_wait_timeout_s", "stall_timeout_s", "shutdown_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name.removesuffix('_s').replace('_', '-')} must be > 0")
        if self.retries < 0:
            raise ConfigError("--retries must be >= 0")
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be >= 1")
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"unknown engine {self.engine!r}; use local or ray")
        if self.max_file_size < 1:
            raise ConfigError("--max-file-size must be >= 1 byte")
