"""The directory walk: yields every candidate file, and every path refused with a reason.

It opens no candidate file: only ``os.scandir``, ``lstat`` and ``stat`` are used (the
only files read are the ignore files themselves, opened non-blocking). Content reading
and binary detection belong to a later stage.

Order: depth-first, entries of each directory sorted by name, a directory's contents
yielded where the directory sorts among its siblings. Symlinked directories are walked
after the whole real tree (in the order they were met), so a directory reachable both
directly and through a link is always reported under its real path; each real directory
(by ``st_dev, st_ino``) is walked at most once, which also makes symlink cycles
terminate.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections import deque
from typing import TYPE_CHECKING

from ..models import FileEntry, SkippedFile
from .ignore import CODESIFTIGNORE, GITIGNORE, Rules, could_reinclude, decide, read_ignore_file

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

GIT_DIR = ".git"

R_VANISHED = "vanished during discovery"
R_PERMISSION = "permission denied"
R_BROKEN = "broken symlink"
R_LOOP = "symlink loop"
R_OUTSIDE = "symlink points outside the root"
R_EXCLUDED_TARGET = "symlink points into .git or the index directory"

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int) -> str:
    """``512 B``, ``1.0 MiB``, ``3.2 GiB``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in _UNITS[1:]:
        value /= 1024.0
        if value < 1024.0 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def too_large_reason(size: int, limit: int) -> str:
    return f"larger than the {human_size(limit)} limit ({human_size(size)})"


def _kind(mode: int) -> str:
    if stat_mod.S_ISFIFO(mode):
        return "FIFO"
    if stat_mod.S_ISSOCK(mode):
        return "socket"
    if stat_mod.S_ISCHR(mode):
        return "character device"
    if stat_mod.S_ISBLK(mode):
        return "block device"
    if stat_mod.S_ISDIR(mode):
        return "directory"
    return "unknown type"


def _os_error_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return R_VANISHED
    if isinstance(exc, PermissionError):
        return R_PERMISSION
    if exc.errno == errno.ELOOP:
        return R_LOOP
    return f"cannot access ({exc.strerror or exc})"


def _name(entry: os.DirEntry) -> str:
    return entry.name



class _Walker:
    """State of one discovery run."""

    def __init__(self, root: Path, index_dir: Path | None, max_file_size: int):
        self.root = os.path.realpath(os.fspath(root))
        self.root_prefix = self.root.rstrip(os.sep) + os.sep
        self.max_file_size = max_file_size
        self.index_key: tuple[int, int] | None = None
        self.index_rel: str | None = None
        self.index_real: str | None = None
        if index_dir is not None:
            index_real = os.path.realpath(os.fspath(index_dir))
            try:
                st = os.stat(index_real)
                self.index_key = (st.st_dev, st.st_ino)
            except OSError:
                pass
            if index_real.startswith(self.root_prefix):
                self.index_rel = index_real[len(self.root_prefix) :].replace(os.sep, "/")
            self.index_real = index_real
        self.visited: set[tuple[int, int]] = set()
        # Symlinked directories met, walked after the real tree:
        # (abspath, rel, (dev, ino), ignored, rules of the link's directory, realpath)
        self.deferred: deque = deque()

    # -- one directory -------------------------------------------------------------

    def open_dir(self, abs_path: str, prefix: str, ignored: bool, inherited: Rules):
        """List a directory: a walk frame, or a SkippedFile when it cannot be listed."""
        try:
            with os.scandir(abs_path) as it:
                entries = list(it)
        except OSError as exc:
            return SkippedFile(prefix.rstrip("/") or ".", _os_error_reason(exc))
        entries.sort(key=_name)
        gitignore = codesiftignore = None
        for e in entries:
            n = e.name
            if n == GITIGNORE or n == CODESIFTIGNORE:
                try:
                    regular = e.is_file(follow_symlinks=False)
                except OSError:
                    regular = False
                if regular:
                    if n == GITIGNORE:
                        gitignore = read_ignore_file(e.path)
                    else:
                        codesiftignore = read_ignore_file(e.path)
        rules = inherited
        if gitignore is not None or codesiftignore is not None:
            rules = inherited.child(prefix, gitignore, codesiftignore)
        return [entries, 0, prefix, ignored, rules]

    def file_result(self, rel: str, abspath: str, st: os.stat_result):
        mode = st.st_mode
        if stat_mod.S_ISREG(mode):
            size = st.st_size
            if size > self.max_file_size:
                return SkippedFile(
                    rel, too_large_reason(size, self.max_file_size), size, st.st_mtime_ns
                )
            return FileEntry(rel, abspath, size, st.st_mtime_ns)
        if stat_mod.S_ISDIR(mode) or stat_mod.S_ISLNK(mode):
            return SkippedFile(rel, R_VANISHED)  # replaced between listing and stat
        return SkippedFile(rel, f"not a regular file ({_kind(mode)})", 0, st.st_mtime_ns)

    def symlink(self, e: os.DirEntry, rel: str, rules: Rules, ignored: bool):
        """Classify one symlink: a FileEntry, a SkippedFile, or None (ignored, or a
        directory deferred for later)."""
        path = e.path
        layers = rules.layers
        try:
            st = os.stat(path)
        except OSError as exc:
            if _is_ignored(layers, ignored, rel, False):
                return None
            if isinstance(exc, FileNotFoundError):
                return SkippedFile(rel, R_BROKEN if os.path.lexists(path) else R_VANISHED)
            return SkippedFile(rel, _os_error_reason(exc))
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        if _is_ignored(layers, ignored, rel, is_dir):
            return None
        real = os.path.realpath(path)
        if real != self.root and not real.startswith(self.root_prefix):
            return SkippedFile(rel, R_OUTSIDE)
        if real != self.root and (
            f"/{real[len(self.root_prefix):]}/".find(f"/{GIT_DIR}/") >= 0
            or (self.index_real is not None
                and (real == self.index_real or real.startswith(self.index_real + os.sep)))
        ):
            return SkippedFile(rel, R_EXCLUDED_TARGET)
        if not is_dir:
            return self.file_result(rel, path, st)
        key = (st.st_dev, st.st_ino)
        if key != self.index_key:
            # Not ignored itself (checked above), so its contents start not ignored.
            self.deferred.append((path, rel, key, False, rules, real))
        return None

    # -- a whole tree --------------------------------------------------------------

    def walk(self, first, should_stop):
        """Depth-first walk from an opened frame; returns early if told to stop."""
        stack = [first]
        index_rel = self.index_rel
        index_key = self.index_key
        visited = self.visited
        open_dir = self.open_dir
        max_size = self.max_file_size
        file_entry = FileEntry
        S_ISREG = stat_mod.S_ISREG
        while stack:
            frame = stack[-1]
            entries, i, prefix, ignored, rules = frame
            layers = rules.layers
            n = len(entries)
            descend = None
            while i < n:
                e = entries[i]
                i += 1
                name = e.name
                if name == GIT_DIR:
                    continue
                rel = prefix + name
                try:
                    if e.is_symlink():
                        result = self.symlink(e, rel, rules, ignored)
                        if result is not None:
                            yield result
                        continue
                    is_dir = e.is_dir(follow_symlinks=False)
                except OSError as exc:
                    yield SkippedFile(rel, _os_error_reason(exc))
                    continue

                if is_dir:
                    child_ignored = ignored
                    if layers:
                        verdict = decide(layers, rel + "/", name + "/", True)
                        if verdict is not None:
                            child_ignored = verdict
                    if child_ignored and not (
                        rules.neg_segments and could_reinclude(rules.neg_segments, rel)
                    ):
                        continue
                    if rel == index_rel:
                        continue
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError as exc:
                        yield SkippedFile(rel, _os_error_reason(exc))
                        continue
                    key = (st.st_dev, st.st_ino)
                    if key == index_key:
                        continue
                    if key in visited:  # e.g. a bind mount of an ancestor
                        yield SkippedFile(rel, "directory loop")
                        continue
                    visited.add(key)
                    descend = (e.path, rel + "/", child_ignored)
                    break

                # A regular file or a special file.
                if layers:
                    verdict = decide(layers, rel, name, False)
                    if ignored if verdict is None else verdict:
                        continue
                elif ignored:
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError as exc:
                    yield SkippedFile(rel, _os_error_reason(exc))
                    continue
                if S_ISREG(st.st_mode):  # the common case, inlined
                    size = st.st_size
                    if size <= max_size:
                        yield file_entry(rel, e.path, size, st.st_mtime_ns)
                        continue
                yield self.file_result(rel, e.path, st)
            frame[1] = i
            if descend is None:
                stack.pop()
                continue
            if should_stop is not None and should_stop():
                self.stopped = True
                return
            child = open_dir(descend[0], descend[1], descend[2], rules)
            if isinstance(child, SkippedFile):
                yield child
            else:
                stack.append(child)

    def run(self, should_stop) -> Iterator[FileEntry | SkippedFile]:
        self.stopped = False
        try:
            st = os.stat(self.root)
        except OSError as exc:
            yield SkippedFile(".", _os_error_reason(exc))
            return
        self.visited.add((st.st_dev, st.st_ino))
        rules = Rules()
        exclude = read_ignore_file(os.path.join(self.root, GIT_DIR, "info", "exclude"))
        if exclude is not None:
            rules = rules.child("", exclude, None)
        if should_stop is not None and should_stop():
            return
        first = self.open_dir(self.root, "", False, rules)
        if isinstance(first, SkippedFile):
            yield first
            return
        yield from self.walk(first, should_stop)

        deferred = self.deferred
        while deferred and not self.stopped:
            path, rel, key, ignored, rules, real = deferred.popleft()
            if key in self.visited:
                link_dir = os.path.realpath(os.path.dirname(path))
                if link_dir == real or link_dir.startswith(real.rstrip(os.sep) + os.sep):
                    yield SkippedFile(rel, R_LOOP)
                else:
                    where = os.path.relpath(real, self.root).replace(os.sep, "/")
                    yield SkippedFile(rel, f"symlink to a directory already indexed as {where}/")
                continue
            if should_stop is not None and should_stop():
                return
            self.visited.add(key)
            frame = self.open_dir(path, rel + "/", ignored, rules)
            if isinstance(frame, SkippedFile):
                yield frame
                continue
            yield from self.walk(frame, should_stop)


def _is_ignored(layers, ignored: bool, rel: str, is_dir: bool) -> bool:
    if not layers:
        return ignored
    name = rel.rpartition("/")[2]
    if is_dir:
        verdict = decide(layers, rel + "/", name + "/", True)
    else:
        verdict = decide(layers, rel, name, False)
    return ignored if verdict is None else verdict


def discover(
    root: Path,
    *,
    index_dir: Path | None,
    max_file_size: int,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[FileEntry | SkippedFile]:
    """Walk ``root`` and yield a :class:`FileEntry` for every regular file to index and a
    :class:`SkippedFile` for every path refused with a reason the user should see.

    Paths are POSIX strings relative to ``root``. Ignored paths (``.gitignore`` at every
    level, ``.git/info/exclude``, ``.codesiftignore`` at every level; exact semantics,
    and the one deliberate difference from git, in :mod:`codesift.discovery.ignore`),
    ``.git`` and the index directory are omitted silently, and ignored directories are
    not entered. Symlinks to files inside the root are followed and reported under the
    link's path; symlinked directories inside the root are walked after the real tree,
    each real directory at most once. Nothing is ever opened but ignore files. Never
    raises for a single path. ``should_stop`` is polled before each directory is listed;
    once it returns True the walk ends without yielding more.
    """
    return _Walker(root, index_dir, max_file_size).run(should_stop)
