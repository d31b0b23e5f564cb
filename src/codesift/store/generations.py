"""Generations: a rebuild is built beside the serving index, then swapped in atomically.

Layout of an index directory (all links relative, so the directory can be moved)::

    current          -> generations/<id>          the generation that serves
    lancedb          -> current/lancedb           the documented places: readers (search,
    manifest.sqlite  -> current/manifest.sqlite   DuckDB, pandas) need no change
    next             -> generations/<id2>         a rebuild under construction, if any
    generations/<id>/{manifest.sqlite, lancedb/}  each generation's own manifest and table
    embed-cache.sqlite, writer.lock, ...          shared by every generation

Why one ``current`` link instead of a pointer row in SQLite: the table and the manifest
must change together, and replacing one symlink with ``os.replace`` is a single atomic
step on POSIX, so a reader resolves either the whole old generation or the whole new one.
SQLite resolves symlinks before it places its ``-wal``/``-shm`` files, so each manifest's
WAL stays beside its own database file (checked: a WAL written through the link lands
in the generation's directory).

A crash at any instant is repaired by :meth:`Generations.prepare` under the writer lock:
an unfinished migration is completed, a ``next`` equal to ``current`` (the swap happened,
the clean-up did not) is dropped, and every generation that is neither current nor next is
deleted. Only the lock holder calls anything here except :func:`read_state`.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DiskSpaceError
from .layout import GenerationLayout, IndexLayout

MIGRATED_ID = "g0"  # the generation an index written before generations becomes
FREE_BYTES_ENV = "CODESIFT_TEST_FREE_BYTES"  # test-only: pretend the filesystem has this many bytes free
REBUILD_MARGIN = 1.10  # room for the new generation: the current one's size, plus 10%
_MANIFEST_FILES = ("manifest.sqlite", "manifest.sqlite-wal", "manifest.sqlite-shm")


def du(path: Path) -> int:
    """Bytes used by the files under ``path`` (apparent size; links not followed)."""
    total = 0
    stack = [os.fspath(path)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.is_file(follow_symlinks=False):
                            total += e.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue  # vanished while walked (a concurrent write): not counted
        except OSError:
            continue
    return total


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem of ``path``; ``CODESIFT_TEST_FREE_BYTES`` overrides it (tests only)."""
    override = os.environ.get(FREE_BYTES_ENV)
    if override:
        try:
            return int(override)
        except ValueError as exc:
            raise ConfigError(f"{FREE_BYTES_ENV} must be a number of bytes, got {override!r}") from exc
    return shutil.disk_usage(path).free


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link(path: Path, target: str) -> None:
    """Point symlink ``path`` at ``target`` atomically (a new link, then os.replace)."""
    tmp = path.with_name(path.name + ".tmp-link")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _resolve(layout: IndexLayout, link: Path) -> GenerationLayout | None:
    try:
        target = os.readlink(link)
    except OSError:
        return None
    directory = (link.parent / target)
    return GenerationLayout(directory) if directory.is_dir() else None


@dataclass(frozen=True)
class GenerationState:
    """What a reader sees: the serving generation and an unfinished rebuild, if any."""

    current: GenerationLayout | None  # None: an index not yet migrated (legacy layout)
    pending: GenerationLayout | None


def read_state(layout: IndexLayout) -> GenerationState:
    current = _resolve(layout, layout.current_link)
    pending = _resolve(layout, layout.next_link)
    if pending is not None and current is not None and pending.directory.resolve() == current.directory.resolve():
        pending = None  # swapped, clean-up not done yet
    return GenerationState(current, pending)


class Generations:
    """The writer's handle on an index directory's generations (lock held)."""

    def __init__(self, layout: IndexLayout) -> None:
        self.layout = layout

    def prepare(self) -> GenerationState:
        """Migrate, repair and sweep: afterwards ``current`` exists and nothing stale is left."""
        lay = self.layout
        lay.generations.mkdir(exist_ok=True)
        if not os.path.lexists(lay.current_link) or _resolve(lay, lay.current_link) is None:
            self._migrate()
        for name, sub in _links(lay):
            if not os.path.lexists(name):
                _link(name, f"current/{sub}")
        state = read_state(lay)
        if state.pending is None and os.path.lexists(lay.next_link):
            os.unlink(lay.next_link)  # swapped (or its target is gone): nothing is under construction
        keep = {state.current.directory.resolve()}
        if state.pending is not None:
            keep.add(state.pending.directory.resolve())
        for entry in lay.generations.iterdir():
            if entry.resolve() not in keep:
                _remove(entry)  # an old generation whose removal a crash interrupted
        return state

    def _migrate(self) -> None:
        """Move a legacy (or brand-new) index's files into generation ``g0``; idempotent.

        Each step is a rename, so a crash between steps leaves files either in their old
        place or in ``g0``, and the next run moves the rest.
        """
        lay = self.layout
        gen = GenerationLayout(lay.generations / MIGRATED_ID)
        gen.directory.mkdir(parents=True, exist_ok=True)
        if lay.lancedb.is_dir() and not lay.lancedb.is_symlink():
            os.rename(lay.lancedb, gen.lancedb)
        for name in _MANIFEST_FILES:
            legacy = lay.index_dir / name
            if legacy.exists() and not legacy.is_symlink():
                os.rename(legacy, gen.directory / name)
        _fsync_dir(gen.directory)
        _link(lay.current_link, f"generations/{MIGRATED_ID}")
        for name, sub in _links(lay):
            if os.path.lexists(name) and name.is_symlink():
                os.unlink(name)
            _link(name, f"current/{sub}")
        _fsync_dir(lay.index_dir)

    def begin(self) -> GenerationLayout:
        """A new, empty generation, linked as ``next`` (the rebuild's resumable target)."""
        name = f"g{time.time_ns()}"
        gen = GenerationLayout(self.layout.generations / name)
        gen.directory.mkdir(parents=True)
        _link(self.layout.next_link, f"generations/{name}")
        _fsync_dir(self.layout.index_dir)
        return gen

    def discard(self, gen: GenerationLayout) -> None:
        """Drop an unfinished rebuild (``--full`` restarts one)."""
        if os.path.lexists(self.layout.next_link):
            os.unlink(self.layout.next_link)
        _remove(gen.directory)

    def swap(self, gen: GenerationLayout) -> None:
        """Make ``gen`` current in one atomic step, then remove the old generation."""
        old = _resolve(self.layout, self.layout.current_link)
        _link(self.layout.current_link, f"generations/{gen.name}")
        _fsync_dir(self.layout.index_dir)
        if os.path.lexists(self.layout.next_link):
            os.unlink(self.layout.next_link)
        if old is not None and old.directory.resolve() != gen.directory.resolve():
            _remove(old.directory)

    def check_room(self, current: GenerationLayout, pending: GenerationLayout | None = None) -> None:
        """Refuse a rebuild up front when the filesystem cannot hold both generations."""
        have = du(current.directory)
        built = du(pending.directory) if pending is not None else 0
        need = max(0, int(have * REBUILD_MARGIN) - built)
        free = free_bytes(self.layout.index_dir)
        if need > free:
            raise DiskSpaceError(
                f"not enough free disk for a rebuild: it is built beside the current index "
                f"({_mib(have)}) and needs about {_mib(need)} more, but only {_mib(free)} is free "
                f"on the filesystem of {self.layout.index_dir}; the current index is unchanged and keeps serving",
                stage="rebuild")


def _links(lay: IndexLayout) -> tuple[tuple[Path, str], ...]:
    """The fixed links to the current generation. ``manifest.sqlite-wal`` is there for
    readers that watch the WAL's stat to notice commits (SQLite itself resolves the
    database's link and never opens it); it dangles while the WAL does not exist."""
    return ((lay.lancedb, "lancedb"), (lay.manifest, "manifest.sqlite"),
            (lay.index_dir / "manifest.sqlite-wal", "manifest.sqlite-wal"))


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path)
