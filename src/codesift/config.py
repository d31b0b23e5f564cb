"""Run configuration as frozen values with safe defaults: every deadline is on."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import ConfigError
from .store.ann import MIN_ROWS as ANN_MIN_ROWS

DEFAULT_INDEX_DIRNAME = ".codesift"
INDEX_DIR_ENV = "CODESIFT_INDEX_DIR"

DEFAULT_MAX_FILE_SIZE = 1 << 20
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


def _deadline(default: float, flag: str | None, help: str) -> float:  # noqa: A002 - argparse's word
    return field(default=default, metadata={"flag": flag, "help": help})


@dataclass(frozen=True)
class Deadlines:
    """Every deadline of an index run, in seconds, in one validated value.

    All are on by default (there is no "no deadline"). The CLI's ``--*-timeout`` options
    are generated from the fields that name a flag (:meth:`cli_options`), so a new
    deadline is added here once and appears in ``codesift index --help``.
    """

    embed: float = _deadline(120.0, "--embed-timeout", "deadline of one embed call")
    write: float = _deadline(120.0, "--write-timeout", "deadline of one call to the index store (never retried "
                                                        "past it: the run fails and the next run reconciles)")
    queue: float = _deadline(600.0, "--queue-timeout", "deadline of any wait on a pipeline queue")
    parse: float = _deadline(10.0, "--parse-timeout", "per-file parse deadline (then line windows, recorded)")
    memory_wait: float = _deadline(60.0, "--memory-wait-timeout",
                                   "how long RSS may stay above --memory-limit before the run fails")
    stall: float = _deadline(300.0, "--stall-timeout", "a stage with work and no progress this long has stalled")
    shutdown: float = _deadline(10.0, "--shutdown-timeout",
                                "after SIGINT/SIGTERM or a cancel, how long in-flight work may take")
    job: float = _deadline(24 * 3600.0, "--job-timeout", "wall-clock deadline of a whole Ray job")
    read: float = _deadline(60.0, None, "deadline of reading one file")
    model_load: float = _deadline(300.0, None, "deadline of loading the embedder")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    value > 0 and math.isfinite(value)):
                name = f.metadata["flag"] or f.name.replace("_", "-") + " deadline"
                raise ConfigError(f"{name.lstrip('-')} must be a finite number of seconds > 0, got {value!r}")

    @classmethod
    def cli_options(cls) -> list[tuple[str, str, float, str]]:
        """(field, flag, default, help) of every deadline the CLI exposes."""
        return [(f.name, f.metadata["flag"], f.default, f.metadata["help"])
                for f in fields(cls) if f.metadata["flag"]]


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
    deadlines: Deadlines = field(default_factory=Deadlines)
    memory_limit: int = field(default_factory=default_memory_limit)
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
    # The fast tier: files the index has never seen are chunked ahead of the embedder and
    # searchable (text leg, definitions) before their vectors exist (store/query_tables.py).
    lexical_first: bool = True
    # Above this many vectors, a run builds an HNSW graph of them, so a search scores a
    # few hundred rows instead of all (store/ann.py).
    ann_min_rows: int = ANN_MIN_ROWS

    def __post_init__(self) -> None:
        if not isinstance(self.deadlines, Deadlines):
            raise ConfigError("deadlines must be a codesift.Deadlines value")
        if self.retries < 0:
            raise ConfigError("--retries must be >= 0")
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be >= 1")
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"unknown engine {self.engine!r}; use local or ray")
        if self.max_file_size < 1:
            raise ConfigError("--max-file-size must be >= 1 byte")
        if isinstance(self.ann_min_rows, bool) or not isinstance(self.ann_min_rows, int) or self.ann_min_rows < 1:
            raise ConfigError(f"ann_min_rows must be an int >= 1, got {self.ann_min_rows!r}")
