"""Syntax-aware chunking with tree-sitter: split-then-merge (the cAST idea), on whole lines.

A node whose lines fit the token budget is one chunk. A node that does not fit is split
into its children; the children's lines are partitioned so that every line of the
node's range goes to exactly one child piece (children sharing a line share a piece),
and neighbouring pieces that fit are merged greedily while the merged lines stay within
budget. Definitions (functions, classes, ...) give chunks their ``symbol`` and ``kind``;
what counts as one in each language, and how it is named, lives in ``definitions``.

Lines are whole: a piece always covers complete lines, so chunks never overlap and
every line of the file lies in exactly one piece (blank-only pieces are dropped later).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from .budget import LineCosts
from .definitions import (CLASS_KINDS, SPECS, UNQUALIFYING_KINDS, def_kind, def_name, def_scope, is_leading,
                          is_light, stage_name)
from .languages import get_parser
from .windows import Segment, line_windows

MAX_DEPTH = 200  # deeper nesting than this falls back to line windows for that region
SYMBOL_CHARS = 100
LIST_SYMBOL_CHARS = 200  # a chunk holding several small definitions lists them, up to this length
SMALL_FRACTION = 3  # definitions each under budget/3 may share a chunk


class ParseFailed(Exception):
    """The file could not be parsed (exception or deadline); the message is the user-facing reason."""


class _Ctx:
    """The definition enclosing a region: what its chunks are called."""

    __slots__ = ("symbol", "kind", "root", "node_id", "scope")

    def __init__(self, symbol: str, kind: str, root: bool = False, node_id: int = -1, scope: str = "") -> None:
        self.symbol = symbol
        self.kind = kind
        self.root = root
        self.node_id = node_id  # the definition node this context was made from
        self.scope = scope  # the prefix of names defined inside ("" = not qualified)


class SyntaxChunker:
    def __init__(self, lang: str, costs: LineCosts) -> None:
        self.lang = lang
        self.costs = costs
        self.spec = SPECS[lang]
        self.small = max(1, costs.max_tokens // SMALL_FRACTION)
        self.notes: list[str] = []

    # -- definitions -----------------------------------------------------------------
    def def_of(self, node: Any) -> Any | None:
        """The definition ``node`` is, or that it wraps (export, decorator, template), or whose
        body it is (a Dart function body next to its signature)."""
        spec = self.spec
        defs, wrappers = spec.defs, spec.wrappers
        if node.type in spec.bodies:
            prev = node.prev_named_sibling
            if prev is None or prev.type not in defs:
                return None
            node = prev
        for _ in range(4):
            t = node.type
            if t in defs:
                return node if def_kind(spec, node) else None
            if t not in wrappers:
                return None
            inner = None
            field = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
            if field is not None:
                inner = field
            else:
                for child in node.named_children:
                    if child.type in defs or child.type in wrappers:
                        inner = child
                        break
            if inner is None:
                return None
            node = inner
        return None

    def ctx_for(self, dnode: Any, parent: _Ctx) -> _Ctx:
        if dnode.id == parent.node_id:  # a wrapper's own definition (decorators, export)
            return parent
        spec = self.spec
        kind = def_kind(spec, dnode) or "function"
        # ", " separates the names of a chunk that holds several definitions (see ``named``)
        name = def_name(spec, dnode).replace(", ", ",")[:SYMBOL_CHARS]
        if kind == "function" and not parent.root and parent.kind in CLASS_KINDS:
            kind = "method"
        prefix = "" if parent.root else parent.scope
        symbol = f"{prefix}.{name}" if prefix and name else (name or parent.symbol)
        if len(symbol) > SYMBOL_CHARS:
            # keep the innermost scopes: ``…b.c.name`` says more than ``a.b…``
            tail = symbol[-SYMBOL_CHARS:]
            cut = tail.find(".")
            symbol = tail[cut + 1:] if 0 <= cut < len(tail) - len(name) else name
        scope = "" if kind in UNQUALIFYING_KINDS else def_scope(spec, dnode, symbol)
        return _Ctx(symbol, kind, node_id=dnode.id, scope=scope)

    def named(self, defs: list[Any], ctx: _Ctx) -> tuple[str, str]:
        """The symbol and kind of a chunk holding ``defs`` (inside ``ctx``).

        One definition (or several of one name: Haskell equations, overloads) names the
        chunk; several small ones are listed, ``a, b, c``, so that each stays findable.
        """
        if not defs:
            return ctx.symbol, ctx.kind
        heavy = [d for d in defs if not is_light(self.spec, d, def_kind(self.spec, d))]
        if heavy:  # a constant next to a function: the function names the chunk
            defs = heavy
        ctxs = [self.ctx_for(d, ctx) for d in defs]
        names = list(dict.fromkeys(c.symbol for c in ctxs if c.symbol))
        if len(names) <= 1:
            return (names[0] if names else ctx.symbol), ctxs[0].kind
        shown = names[0]
        for name in names[1:]:
            if len(shown) + 2 + len(name) > LIST_SYMBOL_CHARS:
                break
            shown += ", " + name
        kinds = {c.kind for c in ctxs}
        return shown, ctxs[0].kind if len(kinds) == 1 else _common_kind(ctxs)

    # -- the split-then-merge ----------------------------------------------------------
    def chunk_tree(self, root: Any, total_lines: int) -> list[Segment]:
        top = _Ctx("", "module", root=True)
        if self.spec.stage_starts:
            return self.stages(root, total_lines, top)
        return self.split(root, 1, total_lines, top, 0)

    def stages(self, root: Any, total_lines: int, top: _Ctx) -> list[Segment]:
        """A flat list of instructions cut into stages, each opened by a start node
        (Dockerfile ``FROM ... AS name``); the comments just above a start go with it."""
        groups: list[list[Any]] = [[]]
        for child in root.children:
            if child.type in self.spec.stage_starts:
                moved: list[Any] = []
                prev = groups[-1]
                while prev and is_leading(self.spec, prev[-1]) and \
                        _last_line(prev[-1]) >= (moved[0] if moved else child).start_point[0]:
                    moved.insert(0, prev.pop())  # no blank line between them
                groups.append([*moved, child])
            else:
                groups[-1].append(child)
        out: list[Segment] = []
        lo = 1
        for i, group in enumerate(groups):
            if not group:
                continue
            hi = total_lines if i == len(groups) - 1 else _last_line(group[-1])
            hi = max(lo, min(hi, total_lines))
            if i == 0:
                ctx = top
            else:
                start = next(c for c in group if c.type in self.spec.stage_starts)
                ctx = _Ctx(stage_name(start)[:SYMBOL_CHARS], "stage", node_id=start.id)
            if lo <= hi:
                out.extend(self.split_children(group, lo, hi, ctx, 1))
            lo = hi + 1
        if lo <= total_lines:
            out.extend(line_windows(self.costs, lo, total_lines, top.symbol, top.kind))
        return out

    def split(self, node: Any, lo: int, hi: int, ctx: _Ctx, depth: int) -> list[Segment]:
        costs = self.costs
        if lo >= hi:
            return [(lo, hi, ctx.symbol, ctx.kind)]
        if depth > MAX_DEPTH:
            self.notes.append(f"syntax nested deeper than {MAX_DEPTH} levels at lines {lo}-{hi}; "
                              "used line windows there")
            return line_windows(costs, lo, hi, ctx.symbol, ctx.kind)
        children = node.children
        if not children:
            return line_windows(costs, lo, hi, ctx.symbol, ctx.kind)
        return self.split_children(children, lo, hi, ctx, depth)

    def split_children(self, children: list[Any], lo: int, hi: int, ctx: _Ctx, depth: int) -> list[Segment]:
        costs = self.costs
        spec = self.spec
        if lo >= hi:
            return [(lo, hi, ctx.symbol, ctx.kind)]

        # Partition lo..hi into pieces [start, end, members]: a child owns the lines after
        # the previous piece up to its own last line; children ending on an already owned
        # line join that piece.
        pieces: list[list[Any]] = []
        cur = lo
        pending: list[Any] = []
        for child in children:
            end = _last_line(child)
            if end > hi:
                end = hi
            if end < cur:
                if pieces:
                    pieces[-1][2].append(child)
                else:
                    pending.append(child)
                continue
            pieces.append([cur, end, [*pending, child]])
            pending = []
            cur = end + 1
        if pending or not pieces:
            if pieces:
                pieces[-1][2].extend(pending)
            else:
                return line_windows(costs, lo, hi, ctx.symbol, ctx.kind)
        if cur <= hi:
            pieces[-1][1] = hi

        out: list[Segment] = []
        small = self.small
        # acc: a run of fitting pieces being merged: [start, end, defs, leading_only]
        acc: list[Any] | None = None
        after_split = False  # the last thing emitted came from splitting a child
        # indexes in ``out`` of the comment-only chunks just emitted, back to back: a doc
        # comment longer than a chunk, waiting for the definition it documents
        comments: list[int] = []

        def adopt(start: int, symbol: str, kind: str) -> None:
            """Name the comment-only chunks right above line ``start`` after its definition."""
            while comments:
                i = comments.pop()
                c_start, c_end, _, _ = out[i]
                if not self._attached(c_end, c_end + 1, start - 1):
                    break
                out[i] = (c_start, c_end, symbol, kind)
                start = c_start
            comments.clear()

        def flush(following: Any | None = None, following_start: int = 0) -> None:
            """Emit ``acc``; ``following`` is the definition right after it, if any."""
            nonlocal acc
            if acc is None:
                return
            a_start, a_end, a_defs, a_leading = acc
            acc = None
            if (following is not None and a_leading and not a_defs
                    and self._attached(a_end, a_end + 1, following_start)):
                # a doc comment too long to share the definition's chunk is still about it
                c = self.ctx_for(following, ctx)
                adopt(a_start, c.symbol, c.kind)
                out.append((a_start, a_end, c.symbol, c.kind))
                return
            if (after_split and not a_defs and out and costs.fits(out[-1][0], a_end)
                    and costs.cost(a_start, a_end) < small and self._attached(out[-1][1], a_start, a_end)):
                last = out[-1]
                out[-1] = (last[0], a_end, last[2], last[3])
                comments.clear()
                return
            symbol, kind = self.named(a_defs, ctx)
            if a_leading and not a_defs:
                comments.append(len(out))
            elif len(a_defs) == 1:
                adopt(a_start, symbol, kind)
            else:
                comments.clear()
            out.append((a_start, a_end, symbol, kind))

        for start, end, members in pieces:
            defs: list[Any] = []
            leading = True
            for m in members:
                d = self.def_of(m)
                if d is not None and all(d.id != x.id for x in defs):
                    defs.append(d)
                if not is_leading(spec, m):
                    leading = False
            if costs.fits(start, end):
                if acc is not None:
                    a_start, a_end, a_defs, a_leading = acc
                    merge = costs.fits(a_start, end)
                    same = bool(defs) and ({d.id for d in defs} <= {d.id for d in a_defs}
                                           or self._names(defs) == self._names(a_defs))
                    if merge and a_defs and defs and not same and not self._light(defs) and not self._light(
                        a_defs) and (costs.cost(a_start, a_end) >= small or costs.cost(start, end) >= small):
                        merge = False
                    if merge and leading and a_defs and not self._light(a_defs):
                        merge = False  # a comment before a definition goes with what follows
                    if merge:
                        new_defs = a_defs + [d for d in defs if all(d.id != x.id for x in a_defs)]
                        acc = [a_start, end, new_defs, a_leading and leading]
                        continue
                    flush(defs[0] if len(defs) == 1 else None, members[0].start_point[0] + 1)
                    after_split = False
                acc = [start, end, defs, leading]
                continue

            # Too big: split the largest member (with its definition's name, if any).
            member = max(members, key=lambda m: m.end_byte - m.start_byte)
            dnode = self.def_of(member)
            child_ctx = self.ctx_for(dnode, ctx) if dnode is not None else ctx
            first = start
            if acc is not None:
                a_start, a_end, a_defs, a_leading = acc
                own = dnode is not None and bool(a_defs) and all(d.id == dnode.id for d in a_defs)
                if ((not a_defs or own) and costs.cost(a_start, a_end) <= costs.max_tokens // 2
                        and (a_leading or own or (not ctx.root and a_start == lo)
                             or self._attached(a_end, a_end + 1, member.start_point[0] + 1))):
                    first = a_start  # header lines / leading comments go with the first piece
                    acc = None
                else:
                    flush(dnode, member.start_point[0] + 1)
            if dnode is not None:
                adopt(first, child_ctx.symbol, child_ctx.kind)
            if dnode is None and all(is_leading(spec, m) for m in members):
                # a doc comment longer than a chunk: its windows wait for the definition below
                mark = len(out)
                out.extend(self.split(member, first, end, child_ctx, depth + 1))
                comments.extend(range(mark, len(out)))
            else:
                comments.clear()
                out.extend(self.split(member, first, end, child_ctx, depth + 1))
            after_split = True
        flush()
        return out

    def _light(self, defs: list[Any]) -> bool:
        """Only light definitions (module-level constants, data keys): merged like statements."""
        return all(is_light(self.spec, d, def_kind(self.spec, d)) for d in defs)

    def _names(self, defs: list[Any]) -> set[str]:
        """The bare names of ``defs`` (equal for the equations of one Haskell function)."""
        return {def_name(self.spec, d) for d in defs}

    def _attached(self, prev_end: int, start: int, end: int) -> bool:
        """No blank line between the last non-blank line up to ``prev_end`` and lines ``start..end``."""
        costs = self.costs
        if end < start:
            return True
        first = costs.first_nonblank(start, end)
        if first is None:
            return False
        return first == start and (prev_end < 1 or not costs.blank[prev_end - 1])


def _last_line(node: Any) -> int:
    """The 1-based last line of ``node`` (a node ending at column 0 ends on the line before)."""
    erow = node.end_point[0]
    return erow if (node.end_point[1] == 0 and erow > node.start_point[0]) else erow + 1


_KIND_ORDER = ("class", "interface", "trait", "struct", "enum", "union", "impl", "module", "namespace", "type",
               "function", "method", "macro", "property", "section", "table", "view", "rule", "block")


def _common_kind(ctxs: list[_Ctx]) -> str:
    """For a chunk holding definitions of several kinds: the most type-like of them."""
    kinds = {c.kind for c in ctxs}
    for kind in _KIND_ORDER:
        if kind in kinds:
            return kind
    return ctxs[0].kind


def parse(lang: str, data: bytes, timeout_s: float) -> Any:
    """Parse ``data``; raise ``ParseFailed`` on an exception or when ``timeout_s`` passes.

    The deadline is tree-sitter's own ``timeout_micros``, checked inside the C parser:
    a parse holds the GIL, so no Python-level watchdog could interrupt it. (tree-sitter
    0.26 replaced it with a progress callback that only works with the read-callback
    form of ``parse``, which leaks every chunk it returns — measured: the source of
    every parsed file stays resident — hence the pin to 0.25.)
    """
    parser = get_parser(lang)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        parser.timeout_micros = max(1, int(timeout_s * 1_000_000))
    started = time.monotonic()
    try:
        tree = parser.parse(data)
    except ValueError as exc:  # tree-sitter 0.25 raises "Parsing failed" on timeout
        parser.reset()
        if time.monotonic() - started >= timeout_s * 0.9:
            raise ParseFailed(f"parse deadline of {timeout_s:g}s exceeded") from None
        raise ParseFailed(f"parse failed ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure means: use line windows
        parser.reset()
        raise ParseFailed(f"parse failed ({type(exc).__name__}: {exc})") from None
    if tree is None:
        parser.reset()
        raise ParseFailed(f"parse deadline of {timeout_s:g}s exceeded")
    return tree


def chunk_syntax(lang: str, text: str, costs: LineCosts, timeout_s: float) -> tuple[list[Segment], list[str]]:
    """Syntax chunks of ``text``; raises ``ParseFailed`` when the tree cannot be had."""
    data = text.encode("utf-8", "surrogatepass")
    tree = parse(lang, data, timeout_s)
    chunker = SyntaxChunker(lang, costs)
    segments = chunker.chunk_tree(tree.root_node, len(costs.lines))
    return segments, chunker.notes


__all__ = ["ParseFailed", "SPECS", "chunk_syntax", "parse"]
