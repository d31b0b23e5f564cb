"""The ignore-rule stack used by the walk: ``.gitignore``, ``.git/info/exclude`` and
``.codesiftignore``.

Each ignore file becomes one :class:`Layer`: its patterns (translated to regular
expressions by ``pathspec``'s gitignore translator) plus the directory holding it.
Paths are matched relative to that directory.

Precedence, highest first (the first layer with a matching pattern decides, and inside
a layer the last matching pattern wins, as in git):

1. ``.codesiftignore`` files, deepest directory first;
2. ``.gitignore`` files, deepest directory first;
3. ``.git/info/exclude`` at the root.

So a ``.codesiftignore`` can re-include (``!pattern``) what a ``.gitignore`` ignores.

Semantics follow git: a pattern only decides for a path it matches *itself* (not via an
ancestor directory), because the walk prunes ignored directories, so every ancestor of a
path being matched was already found not ignored. Directory-only patterns (``dir/``)
match directories only.

Deliberate difference from git (git can never re-include a path whose parent directory
is excluded): a negation in a ``.codesiftignore`` that names a path *inside* an ignored
directory with an explicit slash-anchored pattern (``!build/keep.py``,
``!generated/api/**``) makes the walk descend into that directory; everything in it
that no pattern re-includes stays ignored. Un-anchored negations (``!*.py``,
``!keep/``) never cause an ignored directory to be entered — otherwise every
``node_modules`` would be walked — so they cannot reach inside ignored directories.
Negations in ``.gitignore`` files keep git's exact behaviour.

Not supported: the global ``core.excludesFile``; ignore files that are symlinks (git
does not follow them either).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from fnmatch import fnmatchcase

GITIGNORE = ".gitignore"
CODESIFTIGNORE = ".codesiftignore"

_MAX_IGNORE_FILE = 8 * 1024 * 1024
_translate = None

log = logging.getLogger("codesift.discovery")


def _translator():
    """``pattern_to_regex`` of pathspec's gitignore pattern class (imported lazily)."""
    global _translate
    if _translate is None:
        try:  # pathspec >= 1.0
            from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern as pattern_cls
        except ImportError:  # pathspec 0.12
            from pathspec.patterns.gitwildmatch import GitWildMatchPattern as pattern_cls
        _translate = pattern_cls.pattern_to_regex
    return _translate


class _RuleSet:
    """Some patterns of one ignore file, with a combined pre-test.

    ``rules``: ``(regex.match, negate, has_dir_mark, order)``, last pattern of the file
    first (``order`` is the line's position, to compare with the other set).
    ``first``: one alternation of every regex in that order, each alternative in a group
    named by its index in ``rules``. The first alternative that matches is the last
    pattern that matches, so ``lastgroup`` says where to start checking.
    """

    __slots__ = ("rules", "first", "literals", "suffixes", "others")

    def __init__(self, rules: list, alternatives: list[str], bodies: list[str] | None = None):
        rules.reverse()
        alternatives.reverse()
        self.rules = rules
        combined = "|".join(f"(?P<r{i}>{alt})" for i, alt in enumerate(alternatives))
        self.first = re.compile(combined).match
        self.literals = self.suffixes = self.others = None
        if bodies is not None:
            self._build_pretest(bodies[::-1], alternatives)

    def _build_pretest(self, bodies: list[str], alternatives: list[str]) -> None:
        """For name patterns: a cheap test that rejects most names that no pattern can
        match (literal names: a set; ``*literal``: ``str.endswith``; the rest: a regex).
        ``bodies``: each pattern without "!", with its trailing "/" (dir-only) kept."""
        literals: set[str] = set()
        suffixes: list[str] = []
        others: list[str] = []
        for body, alt in zip(bodies, alternatives, strict=True):
            dir_only = body.endswith("/")
            core = body.rstrip("/")
            if not any(c in core for c in "*?[\\"):
                forms = (core + "/",) if dir_only else (core, core + "/")
                literals.update(forms)
            elif core[0] == "*" and not any(c in core[1:] for c in "*?[\\"):
                tail = core[1:]
                suffixes.extend((tail + "/",) if dir_only else (tail, tail + "/"))
            else:
                others.append(alt)
        self.literals = literals
        self.suffixes = tuple(suffixes)
        self.others = re.compile("|".join(others)).match if others else None

    def last_direct(self, s: str, is_dir: bool):
        """The last pattern matching ``s`` itself (not only an ancestor directory of
        it): ``(order, negate)``, or None."""
        if self.literals is not None and not (
            s in self.literals
            or s.endswith(self.suffixes)
            or (self.others is not None and self.others(s) is not None)
        ):
            return None
        m = self.first(s)
        if m is None:
            return None
        rules = self.rules
        for j in range(int(m.lastgroup[1:]), len(rules)):
            match, negate, has_dir_mark, order = rules[j]
            m = match(s)
            if m is None:
                continue
            if has_dir_mark:
                end = m.end("ps_d")
                if is_dir:
                    if end != len(s):  # matched an ancestor directory only
                        continue
                elif end != -1:  # matched an ancestor directory only
                    continue
            elif is_dir and match(s[:-1]) is None:  # "dir/**" does not match dir itself
                continue
            return order, negate
        return None


class Layer:
    """The compiled patterns of one ignore file.

    Patterns without a slash (but a trailing one) match a name at any depth, so they are
    matched against the last path component only (short strings, and never an ancestor
    match); the others against the path relative to the file's directory.
    """

    __slots__ = ("base", "base_len", "names", "paths", "neg_segments")

    def __init__(self, base: str, names, paths, neg_segments: list[list[str]]):
        self.base = base  # "" for the root, else "a/b/" (root-relative, trailing slash)
        self.base_len = len(base)
        self.names: _RuleSet | None = names
        self.paths: _RuleSet | None = paths
        self.neg_segments = neg_segments


_ANY_DEPTH = "^(?:.+/)?"


def compile_layer(text: str, base: str, *, reinclude: bool = False) -> Layer | None:
    """Compile the text of one ignore file found in directory ``base``; None if empty.

    ``reinclude``: record slash-anchored negations so the walk may descend into
    ignored directories to find what they re-include (``.codesiftignore`` only).
    """
    translate = _translator()
    name_rules: list = []
    name_alts: list[str] = []
    name_bodies: list[str] = []
    path_rules: list = []
    path_alts: list[str] = []
    neg_segments: list[list[str]] = []
    base_parts = base.split("/")[:-1] if base else []
    for order, line in enumerate(text.split("\n")):
        if line.endswith("\r"):
            line = line[:-1]
        if not line or line[0] == "#":
            continue
        try:
            regex, include = translate(line)
        except Exception as exc:  # an invalid pattern is skipped, as git does, but not silently
            log.warning("%s: ignoring invalid pattern %r (%s)", base or ".", line, exc)
            continue
        if regex is None or include is None:
            continue
        full = line[1:] if line[0] == "!" else line
        full = full.rstrip(" ")
        body = full.rstrip("/")
        by_name = "/" not in body
        if by_name and regex.startswith(_ANY_DEPTH):
            regex = "^" + regex[len(_ANY_DEPTH) :]  # a name holds no "/"
        try:
            compiled = re.compile(regex)
        except re.error:
            continue
        rule = (compiled.match, not include, "ps_d" in compiled.groupindex, order)
        alt = regex.replace("(?P<ps_d>", "(?:")
        if by_name:
            name_rules.append(rule)
            name_alts.append(alt)
            name_bodies.append(body + "/" if full.endswith("/") else body)
        else:
            path_rules.append(rule)
            path_alts.append(alt)
            if reinclude and not include:
                parts = [p for p in body.lstrip("/").split("/") if p]
                neg_segments.append(base_parts + parts)
    if not name_rules and not path_rules:
        return None
    return Layer(
        base,
        _RuleSet(name_rules, name_alts, name_bodies) if name_rules else None,
        _RuleSet(path_rules, path_alts) if path_rules else None,
        neg_segments,
    )


def decide(layers: tuple[Layer, ...], path: str, name: str, is_dir: bool) -> bool | None:
    """True: ignored; False: re-included by a negation; None: no pattern matches.

    ``path`` is root-relative POSIX and ``name`` its last component; for a directory
    both end with "/".
    """
    for layer in layers:
        found = None
        if layer.names is not None:
            found = layer.names.last_direct(name, is_dir)
        if layer.paths is not None:
            sub = path[layer.base_len :] if layer.base_len else path
            other = layer.paths.last_direct(sub, is_dir)
            if other is not None and (found is None or other[0] > found[0]):
                found = other
        if found is not None:
            return not found[1]
    return None


def could_reinclude(neg_segments: list[list[str]], dir_path: str) -> bool:
    """Whether an anchored negation could name something inside ``dir_path``
    (root-relative, no trailing slash)."""
    parts = dir_path.split("/")
    depth = len(parts)
    for segments in neg_segments:
        n = len(segments)
        for i, part in enumerate(parts):
            if i >= n:
                break
            seg = segments[i]
            if seg == "**":
                return True
            if not fnmatchcase(part, seg):
                break
        else:
            if n > depth:
                return True
    return False


class Rules:
    """The ignore layers in force in one directory (immutable; shared by children)."""

    __slots__ = ("codesift", "git", "layers", "neg_segments")

    def __init__(self, codesift: tuple[Layer, ...] = (), git: tuple[Layer, ...] = ()):
        self.codesift = codesift
        self.git = git
        self.layers = codesift + git
        self.neg_segments = [s for layer in codesift for s in layer.neg_segments]

    def child(self, base: str, gitignore: str | None, codesiftignore: str | None) -> Rules:
        """The rules for a directory holding the given ignore file texts."""
        git = self.git
        codesift = self.codesift
        if gitignore is not None:
            layer = compile_layer(gitignore, base)
            if layer is not None:
                git = (layer,) + git
        if codesiftignore is not None:
            layer = compile_layer(codesiftignore, base, reinclude=True)
            if layer is not None:
                codesift = (layer,) + codesift
        if git is self.git and codesift is self.codesift:
            return self
        return Rules(codesift, git)


def read_ignore_file(path: str) -> str | None:
    """The text of an ignore file, or None when it is not a readable regular file.

    Opened non-blocking and without following symlinks, and checked to be a regular file
    before reading, so a FIFO or device named ``.gitignore`` can never block the walk.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_IGNORE_FILE:
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", "surrogateescape")
