"""Tests for codesift.discovery: ignore rules, special files, symlinks, errors, order."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from codesift.discovery import discover, human_size
from codesift.models import FileEntry, SkippedFile

MiB = 1024 * 1024


def write(root: Path, rel: str, content: str = "x\n") -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(content)
    return p


def run(root: Path, *, index_dir: Path | None = None, max_file_size: int = MiB, **kw):
    return list(discover(root.resolve(), index_dir=index_dir, max_file_size=max_file_size, **kw))


def files(results) -> set[str]:
    return {r.path for r in results if isinstance(r, FileEntry)}


def skipped(results) -> dict[str, str]:
    return {r.path: r.reason for r in results if isinstance(r, SkippedFile)}


# -- ignore rules --------------------------------------------------------------------


def test_nested_gitignore_negation_and_dir_patterns(tmp_path):
    write(tmp_path, ".gitignore", "*.log\nbuild/\n/top_only.txt\n!keep.log\ndata\n")
    for rel in [
        "a.py",
        "a.log",
        "keep.log",
        "top_only.txt",
        "build/out.py",
        "src/build/out.py",
        "src/build.py",
        "src/top_only.txt",
        "data/d.csv",
        "src/data",  # a file named like the ignored "data" (no slash: files too)
        "src/m.py",
        "src/m.log",
        "src/sub/keep.log",
        "src/sub/other.log",
        "src/sub/x.tmp",
        "src/sub/cache/c.py",
        "src/sub/y.py",
    ]:
        write(tmp_path, rel)
    # Deeper file: overrides the root (re-includes other.log), adds its own rules,
    # relative to its own directory.
    write(tmp_path, "src/sub/.gitignore", "!other.log\n*.tmp\ncache/\n/y.py\n")
    # "build" as a regular file is not matched by the directory-only "build/".
    write(tmp_path, "lib/build")
    out = run(tmp_path)
    assert files(out) == {
        ".gitignore",
        "a.py",
        "keep.log",
        "src/build.py",
        "src/top_only.txt",
        "src/m.py",
        "src/sub/.gitignore",
        "src/sub/keep.log",
        "src/sub/other.log",
        "lib/build",
    }
    assert skipped(out) == {}


def test_ignored_directory_is_pruned_and_git_parent_rule(tmp_path):
    # git cannot re-include a file whose parent directory is excluded.
    write(tmp_path, ".gitignore", "vendor/\n!vendor/keep.py\nout/*\n!out/keep.py\n")
    write(tmp_path, "vendor/keep.py")
    write(tmp_path, "vendor/other.py")
    write(tmp_path, "out/keep.py")
    write(tmp_path, "out/other.py")
    write(tmp_path, "out/sub/x.py")
    assert files(run(tmp_path)) == {".gitignore", "out/keep.py"}


def test_pruned_directory_is_not_listed(tmp_path):
    write(tmp_path, ".gitignore", "secret/\n")
    write(tmp_path, "secret/a.py")
    write(tmp_path, "ok.py")
    if os.geteuid() != 0:
        # Unlistable, but ignored: never entered, so no "permission denied" either.
        os.chmod(tmp_path / "secret", 0)
    try:
        out = run(tmp_path)
    finally:
        os.chmod(tmp_path / "secret", 0o755)
    assert files(out) == {".gitignore", "ok.py"}
    assert skipped(out) == {}


def test_double_star_and_anchored_patterns(tmp_path):
    write(tmp_path, ".gitignore", "docs/**/*.md\n/gen/**\n!gen/keep.txt\nnode_modules\n")
    for rel in [
        "docs/a.md",
        "docs/x/b.md",
        "docs/x/y/c.md",
        "docs/x/c.txt",
        "README.md",
        "gen/a.txt",
        "gen/keep.txt",
        "gen/sub/b.txt",
        "node_modules/p/index.js",
        "web/node_modules/q/index.js",
    ]:
        write(tmp_path, rel)
    assert files(run(tmp_path)) == {
        ".gitignore",
        "docs/x/c.txt",
        "README.md",
        "gen/keep.txt",
    }


def test_git_info_exclude(tmp_path):
    write(tmp_path, ".git/info/exclude", "# comment\n*.secret\nlocal/\n")
    write(tmp_path, ".git/config", "[core]\n")
    write(tmp_path, "a.py")
    write(tmp_path, "b.secret")
    write(tmp_path, "sub/c.secret")
    write(tmp_path, "local/d.py")
    # .gitignore overrides info/exclude.
    write(tmp_path, "keep/.gitignore", "!*.secret\n")
    write(tmp_path, "keep/e.secret")
    assert files(run(tmp_path)) == {"a.py", "keep/.gitignore", "keep/e.secret"}


def test_codesiftignore_overrides_gitignore(tmp_path):
    write(tmp_path, ".gitignore", "*.gen.py\ngenerated/\nvendored/\n")
    write(tmp_path, ".codesiftignore", "!api.gen.py\n!generated/\ndocs/\n*.min.js\n")
    write(tmp_path, "sub/.codesiftignore", "!app.min.js\n")
    for rel in [
        "api.gen.py",
        "other.gen.py",
        "generated/x.py",
        "vendored/y.py",
        "docs/index.py",
        "a.min.js",
        "sub/app.min.js",
        "sub/b.min.js",
        "main.py",
    ]:
        write(tmp_path, rel)
    assert files(run(tmp_path)) == {
        ".gitignore",
        ".codesiftignore",
        "sub/.codesiftignore",
        "api.gen.py",
        "generated/x.py",
        "sub/app.min.js",
        "main.py",
    }


def test_codesiftignore_reinclude_inside_ignored_directory(tmp_path):
    # Extension over git: an anchored negation in .codesiftignore reaches inside a
    # directory that .gitignore excludes; the rest of it stays ignored.
    write(tmp_path, ".gitignore", "build/\n")
    write(tmp_path, ".codesiftignore", "!build/keep.py\n!build/api/**\n")
    for rel in ["build/keep.py", "build/other.py", "build/api/a.py", "build/api/x/b.py",
                "build/tmp/c.py"]:
        write(tmp_path, rel)
    assert files(run(tmp_path)) == {
        ".gitignore",
        ".codesiftignore",
        "build/keep.py",
        "build/api/a.py",
        "build/api/x/b.py",
    }


def test_gitignore_with_crlf_and_invalid_lines(tmp_path):
    (tmp_path / ".gitignore").write_bytes(b"*.log\r\n!\r\n\r\n[z-a\r\nout/\r\n")
    write(tmp_path, "a.log")
    write(tmp_path, "out/b.py")
    write(tmp_path, "c.py")
    assert files(run(tmp_path)) == {".gitignore", "c.py"}


def test_gitignore_fifo_does_not_block(tmp_path):
    write(tmp_path, "a.py")
    os.mkfifo(tmp_path / ".gitignore")
    out = run(tmp_path)
    assert files(out) == {"a.py"}
    assert skipped(out) == {".gitignore": "not a regular file (FIFO)"}


def test_agrees_with_git_check_ignore(tmp_path):
    git = subprocess.run(["git", "--version"], capture_output=True)
    if git.returncode != 0:  # pragma: no cover
        pytest.skip("git not available")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write(tmp_path, ".gitignore", "*.o\n/bin/\ntmp*/\n!tmp_keep/\nlogs/**/*.log\n#x\n\\#hash\n")
    write(tmp_path, "pkg/.gitignore", "*.txt\n!important.txt\n/local.py\nsub/*.py\n")
    write(tmp_path, ".git/info/exclude", "*.swp\n")
    rels = [
        "a.c", "a.o", "bin/x", "src/bin/y", "tmp1/a", "tmp_keep/b", "tmpfile",
        "logs/a.log", "logs/x/b.log", "logs/x/c.txt", "#hash", "x.swp",
        "pkg/a.txt", "pkg/important.txt", "pkg/local.py", "pkg/deep/local.py",
        "pkg/sub/a.py", "pkg/sub/deeper/b.py", "pkg/sub/c.c",
    ]
    for rel in rels:
        write(tmp_path, rel)
    got = files(run(tmp_path))
    listed = subprocess.run(
        ["git", "-C", str(tmp_path), "ls-files", "--others", "--exclude-standard"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert got == set(listed)


# -- always skipped ------------------------------------------------------------------


def test_git_dir_skipped_at_any_level(tmp_path):
    write(tmp_path, ".git/HEAD")
    write(tmp_path, "sub/.git/HEAD")
    write(tmp_path, "wt/.git", "gitdir: elsewhere\n")  # a worktree's .git file
    write(tmp_path, "sub/a.py")
    write(tmp_path, ".github/ci.yml")
    assert files(run(tmp_path)) == {"sub/a.py", ".github/ci.yml"}


def test_index_dir_inside_root_skipped(tmp_path):
    write(tmp_path, ".codesift/manifest.json")
    write(tmp_path, ".codesift/data/x.lance")
    write(tmp_path, "a.py")
    out = run(tmp_path, index_dir=tmp_path / ".codesift")
    assert files(out) == {"a.py"}
    assert skipped(out) == {}


def test_index_dir_nested_and_via_relative_spelling(tmp_path):
    write(tmp_path, "var/idx/m.json")
    write(tmp_path, "var/other.py")
    out = run(tmp_path, index_dir=tmp_path / "var" / ".." / "var" / "idx")
    assert files(out) == {"var/other.py"}


def test_index_dir_outside_root(tmp_path):
    root = tmp_path / "root"
    index = tmp_path / "index"
    write(index, "m.json")
    write(root, "a.py")
    write(root, "index/b.py")  # same name as the index dir, but a different directory
    (root / "idx_link").symlink_to(index)
    out = run(root, index_dir=index)
    assert files(out) == {"a.py", "index/b.py"}
    assert skipped(out) == {"idx_link": "symlink points outside the root"}


def test_symlink_into_index_dir_or_git_not_followed(tmp_path):
    write(tmp_path, ".codesift/m.json")
    write(tmp_path, ".git/config")
    write(tmp_path, "a.py")
    (tmp_path / "to_index").symlink_to(tmp_path / ".codesift")
    (tmp_path / "cfg").symlink_to(tmp_path / ".git" / "config")
    out = run(tmp_path, index_dir=tmp_path / ".codesift")
    assert files(out) == {"a.py"}
    assert set(skipped(out)) <= {"to_index", "cfg"}
    assert "cfg" in skipped(out)


# -- special files -------------------------------------------------------------------


def test_fifo_reported_and_never_opened(tmp_path):
    write(tmp_path, "a.py")
    os.mkfifo(tmp_path / "x.py")
    done = []
    t = threading.Thread(target=lambda: done.append(run(tmp_path)), daemon=True)
    t.start()
    t.join(10)
    assert done, "discovery blocked on a FIFO"
    out = done[0]
    assert files(out) == {"a.py"}
    assert skipped(out) == {"x.py": "not a regular file (FIFO)"}


def test_socket_reported(tmp_path):
    import socket

    path = tmp_path / "s.sock"
    if len(str(path)) > 100:  # pragma: no cover - AF_UNIX path limit
        pytest.skip("tmp path too long for a unix socket")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
        assert skipped(run(tmp_path)) == {"s.sock": "not a regular file (socket)"}
    finally:
        s.close()


def test_ignored_fifo_is_silent(tmp_path):
    write(tmp_path, ".gitignore", "*.pipe\n")
    os.mkfifo(tmp_path / "x.pipe")
    out = run(tmp_path)
    assert skipped(out) == {}


def test_oversized_file(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"\0" * int(3.2 * MiB))
    (tmp_path / "exact.txt").write_bytes(b"a" * MiB)
    out = run(tmp_path)
    assert files(out) == {"exact.txt"}
    big = [r for r in out if isinstance(r, SkippedFile)]
    assert len(big) == 1
    assert big[0].path == "big.bin"
    assert big[0].reason == "larger than the 1.0 MiB limit (3.2 MiB)"
    assert big[0].size == int(3.2 * MiB)
    assert big[0].mtime_ns > 0


def test_human_size():
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1024) == "1.0 KiB"
    assert human_size(MiB) == "1.0 MiB"
    assert human_size(int(1.5 * 1024 * MiB)) == "1.5 GiB"


def test_empty_files_included_with_metadata(tmp_path):
    p = write(tmp_path, "empty.py", "")
    write(tmp_path, "sub/empty2.txt", "")
    out = run(tmp_path)
    assert files(out) == {"empty.py", "sub/empty2.txt"}
    entry = next(r for r in out if r.path == "empty.py")
    st = os.stat(p)
    assert entry.size == 0
    assert entry.mtime_ns == st.st_mtime_ns
    assert entry.abspath == str(p.resolve())


# -- symlinks ------------------------------------------------------------------------


def test_symlink_loop_to_parent_terminates(tmp_path):
    write(tmp_path, "a/b.py")
    (tmp_path / "a" / "up").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "root").symlink_to("../")
    out = run(tmp_path)
    assert files(out) == {"a/b.py"}
    assert skipped(out) == {"a/up": "symlink loop", "a/root": "symlink loop"}


def test_self_referencing_symlink_is_loop(tmp_path):
    (tmp_path / "self").symlink_to("self")
    (tmp_path / "p").symlink_to("q")
    (tmp_path / "q").symlink_to("p")
    assert skipped(run(tmp_path)) == {"self": "symlink loop", "p": "symlink loop",
                                      "q": "symlink loop"}


def test_symlink_outside_root(tmp_path):
    root = tmp_path / "root"
    write(tmp_path, "outside/secret.py")
    write(root, "a.py")
    (root / "out_file").symlink_to(tmp_path / "outside" / "secret.py")
    (root / "out_dir").symlink_to(tmp_path / "outside")
    out = run(root)
    assert files(out) == {"a.py"}
    assert skipped(out) == {
        "out_file": "symlink points outside the root",
        "out_dir": "symlink points outside the root",
    }


def test_symlink_inside_root_followed(tmp_path):
    write(tmp_path, "real/a.py", "hello\n")
    write(tmp_path, "real/sub/b.py")
    write(tmp_path, "pruned/c.py")
    write(tmp_path, ".gitignore", "pruned/\n")
    (tmp_path / "link.py").symlink_to("real/a.py")
    (tmp_path / "alias").symlink_to("real")  # same directory twice: walked once
    (tmp_path / "view").symlink_to("pruned")  # the real dir is ignored; link is not
    out = run(tmp_path)
    assert files(out) == {".gitignore", "real/a.py", "real/sub/b.py", "link.py", "view/c.py"}
    link = next(r for r in out if r.path == "link.py")
    assert link.abspath == str(tmp_path.resolve() / "link.py")
    assert link.size == len("hello\n")
    assert skipped(out) == {"alias": "symlink to a directory already indexed as real/"}


def test_symlinked_dir_sorting_first_reported_under_real_path(tmp_path):
    write(tmp_path, "zz/a.py")
    (tmp_path / "aa").symlink_to("zz")
    out = run(tmp_path)
    assert files(out) == {"zz/a.py"}
    assert "aa" in skipped(out)


def test_broken_symlink(tmp_path):
    write(tmp_path, "a.py")
    (tmp_path / "gone.py").symlink_to(tmp_path / "nowhere.py")
    out = run(tmp_path)
    assert files(out) == {"a.py"}
    assert skipped(out) == {"gone.py": "broken symlink"}


def test_ignore_applies_to_symlinks(tmp_path):
    write(tmp_path, ".gitignore", "*.lnk\nlinked_dir/\n")
    write(tmp_path, "real/a.py")
    (tmp_path / "dead.lnk").symlink_to("nowhere")
    (tmp_path / "out.lnk").symlink_to("/")
    (tmp_path / "linked_dir").symlink_to("real")
    out = run(tmp_path)
    assert files(out) == {".gitignore", "real/a.py"}
    assert skipped(out) == {}


# -- errors, stopping, structure ----------------------------------------------------


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_unreadable_directory(tmp_path):
    write(tmp_path, "locked/a.py")
    write(tmp_path, "ok.py")
    os.chmod(tmp_path / "locked", 0)
    try:
        out = run(tmp_path)
    finally:
        os.chmod(tmp_path / "locked", 0o755)
    assert files(out) == {"ok.py"}
    assert skipped(out) == {"locked": "permission denied"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_listable_but_not_searchable_directory(tmp_path):
    write(tmp_path, "noexec/a.py")
    os.chmod(tmp_path / "noexec", 0o644)  # r but no x: names listable, stat denied
    try:
        out = run(tmp_path)
    finally:
        os.chmod(tmp_path / "noexec", 0o755)
    assert skipped(out) == {"noexec/a.py": "permission denied"}


def test_vanished_paths(tmp_path, monkeypatch):
    """Files and directories deleted between listing and stat are reported, not raised."""
    import codesift.discovery.walk as walk

    write(tmp_path, "a/x.py")
    write(tmp_path, "b.py")
    write(tmp_path, "c/y.py")
    real_scandir = os.scandir

    def scandir_then_delete(path):
        entries = list(real_scandir(path))
        if os.path.realpath(path) == str(tmp_path.resolve()):
            os.remove(tmp_path / "b.py")
            os.remove(tmp_path / "c" / "y.py")
            os.rmdir(tmp_path / "c")
        return _ListCM(entries)

    monkeypatch.setattr(walk.os, "scandir", scandir_then_delete)
    out = run(tmp_path)
    assert files(out) == {"a/x.py"}
    assert skipped(out) == {
        "b.py": "vanished during discovery",
        "c": "vanished during discovery",
    }


class _ListCM(list):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_deep_nesting(tmp_path):
    depth = 200
    d = tmp_path
    parts = []
    for i in range(depth):
        parts.append(f"d{i}")
        d = d / f"d{i}"
    os.makedirs(d)
    (d / "leaf.py").write_text("x")
    write(tmp_path, "d0/d1/mid.py")
    out = run(tmp_path)
    assert files(out) == {"/".join(parts) + "/leaf.py", "d0/d1/mid.py"}


def test_sorted_deterministic_order(tmp_path):
    names = ["b.py", "a.py", "C.py", "z/1.py", "z/0.py", "m/n/o.py", "m/a.py", "_x.py",
             "a_dir/q.py"]
    for n in names:
        write(tmp_path, n)
    first = [r.path for r in run(tmp_path)]
    assert first == [
        "C.py", "_x.py", "a.py", "a_dir/q.py", "b.py", "m/a.py", "m/n/o.py", "z/0.py",
        "z/1.py",
    ]
    assert [r.path for r in run(tmp_path)] == first


def test_should_stop_ends_walk(tmp_path):
    for i in range(20):
        write(tmp_path, f"d{i:02d}/f.py")
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    out = run(tmp_path, should_stop=stop)
    assert 0 < len(files(out)) < 20
    assert len(out) == len(files(out))


def test_paths_are_posix_relative_and_abspath_absolute(tmp_path):
    write(tmp_path, "x/y/z.py")
    (entry,) = run(tmp_path)
    assert entry.path == "x/y/z.py"
    assert Path(entry.abspath).is_absolute()
    assert Path(entry.abspath) == tmp_path.resolve() / "x" / "y" / "z.py"


def test_root_missing_does_not_raise(tmp_path):
    out = run(tmp_path / "nope")
    assert [type(r) for r in out] == [SkippedFile]


def test_import_is_cheap():
    code = "import sys, codesift.discovery; print('pathspec' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert res.stdout.strip() == "False"


def test_symlink_into_nested_git_dir_not_followed(tmp_path):
    write(tmp_path, "sub/.git/config")
    (tmp_path / "cfg").symlink_to("sub/.git/config")
    (tmp_path / "g").symlink_to("sub/.git")
    out = run(tmp_path)
    assert files(out) == set()
    assert set(skipped(out)) == {"cfg", "g"}


def test_reincluded_symlinked_dir_inside_ignored_dir(tmp_path):
    write(tmp_path, ".gitignore", "build/\n")
    write(tmp_path, ".codesiftignore", "!build/keep/\n")
    write(tmp_path, "src/a.py")
    write(tmp_path, "build/junk.py")
    (tmp_path / "build").mkdir(exist_ok=True)
    # build/keep is a symlink to a directory that is itself ignored by name.
    write(tmp_path, "hidden/b.py")
    with open(tmp_path / ".gitignore", "a") as f:
        f.write("hidden/\n")
    (tmp_path / "build" / "keep").symlink_to("../hidden")
    assert files(run(tmp_path)) == {".gitignore", ".codesiftignore", "src/a.py",
                                    "build/keep/b.py"}


def test_permission_denied_reported_even_as_root(tmp_path, monkeypatch):
    import codesift.discovery.walk as walk

    write(tmp_path, "locked/a.py")
    write(tmp_path, "ok.py")
    real_scandir = os.scandir
    locked = str(tmp_path.resolve() / "locked")

    def scandir(path):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(walk.os, "scandir", scandir)
    out = run(tmp_path)
    assert files(out) == {"ok.py"}
    assert skipped(out) == {"locked": "permission denied"}


_FUZZ_NAMES = ["a", "b", "build", "x.py", "y.log", "tmp1", "doc", "c.txt"]
_FUZZ_PATTERNS = [
    "*.log", "build/", "build", "/a", "a/", "a/b", "**/b", "b/**", "*.py", "!x.py", "!*.log",
    "doc/*.txt", "!doc/c.txt", "tmp*/", "!build/", "/b/x.py", "a/**/c.txt", "!a/", "*", "!b/",
    "?.txt", "[ab]/", "!**/y.log", "a/*", "b/**/x.py", "!/a/b/",
]


def _fuzz_tree(root: Path, rng, depth: int = 0) -> None:
    for n in rng.sample(_FUZZ_NAMES, rng.randint(1, 4)):
        p = root / n
        if depth < 3 and "." not in n and rng.random() < 0.6:
            p.mkdir()
            if rng.random() < 0.3:
                lines = rng.sample(_FUZZ_PATTERNS, rng.randint(1, 3))
                (p / ".gitignore").write_text("\n".join(lines) + "\n")
            _fuzz_tree(p, rng, depth + 1)
        else:
            p.write_text("x")


@pytest.mark.parametrize("seed", range(12))
def test_random_trees_agree_with_git(tmp_path, seed):
    import random

    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git not available")  # pragma: no cover
    rng = random.Random(seed)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    lines = rng.sample(_FUZZ_PATTERNS, rng.randint(1, 5))
    (tmp_path / ".gitignore").write_text("\n".join(lines) + "\n")
    _fuzz_tree(tmp_path, rng)
    want = set(
        subprocess.run(
            ["git", "-C", str(tmp_path), "ls-files", "-z", "--others", "--exclude-standard"],
            capture_output=True, text=True, check=True,
        ).stdout.split("\0")
    ) - {""}
    assert files(run(tmp_path)) == want
