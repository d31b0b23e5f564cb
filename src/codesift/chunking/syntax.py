"""Syntax-aware chunking with tree-sitter: split-then-merge (the cAST idea), on whole lines.

A node whose lines fit the token budget is one chunk. A node that does not fit is split
into its children; the children's lines are partitioned so that every line of the
node's range goes to exactly one child piece (children sharing a line share a piece),
and neighbouring pieces that fit are merged greedily while the merged lines stay within
budget. Definitions (functions, classes, ...) give chunks their ``symbol`` and ``kind``.

Lines are whole: a piece always covers complete lines, so chunks never overlap and
every line of the file lies in exactly one piece (blank-only pieces are dropped later).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from .budget import LineCosts
from .languages import get_parser
from .windows import Segment, line_windows

MAX_DEPTH = 200  # deeper nesting than this falls back to line windows for that region
SYMBOL_CHARS = 100
SMALL_FRACTION = 3  # definitions each under budget/3 may share a chunk

CLASS_KINDS = frozenset({"class", "interface", "struct", "enum", "impl", "trait", "namespace", "union"})
LEADING_TYPES = frozenset({"comment", "line_comment", "block_comment", "attribute_item", "decorator",
                           "annotation", "marker_annotation", "attribute_list"})

_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function",
                              "class", "class_expression"})

_JS_DEFS = {
    "function_declaration": "function", "generator_function_declaration": "function",
    "class_declaration": "class", "class": "class", "method_definition": "method",
    "variable_declarator": "function",  # only when its value is a function (see _def_kind)
    "assignment_expression": "function",  # ``a.b = function () {}``
}
_TS_DEFS = {
    **_JS_DEFS,
    "abstract_class_declaration": "class", "interface_declaration": "interface",
    "type_alias_declaration": "type", "enum_declaration": "enum", "internal_module": "namespace",
    "module": "namespace", "function_signature": "function", "method_signature": "method",
    "abstract_method_signature": "method",
}
_JS_WRAPPERS = frozenset({"export_statement", "expression_statement", "ambient_declaration",
                          "lexical_declaration", "variable_declaration"})

# language -> (definition node type -> kind, wrapper node types looked through for a definition)
SPECS: dict[str, tuple[dict[str, str], frozenset[str]]] = {
    "python": ({"function_definition": "function", "class_definition": "class"},
               frozenset({"decorated_definition"})),
    "javascript": (_JS_DEFS, _JS_WRAPPERS),
    "typescript": (_TS_DEFS, _JS_WRAPPERS),
    "tsx": (_TS_DEFS, _JS_WRAPPERS),
    "go": ({"function_declaration": "function", "method_declaration": "method", "type_spec": "type"},
           frozenset({"type_declaration"})),
    "rust": ({"function_item": "function", "function_signature_item": "function", "impl_item": "impl",
              "trait_item": "trait", "struct_item": "struct", "enum_item": "enum", "union_item": "union",
              "mod_item": "namespace", "macro_definition": "macro"}, frozenset()),
    "java": ({"class_declaration": "class", "interface_declaration": "interface", "enum_declaration": "enum",
              "record_declaration": "class", "annotation_type_declaration": "interface",
              "method_declaration": "method", "constructor_declaration": "method",
              "compact_constructor_declaration": "method"}, frozenset()),
    "c": ({"function_definition": "function", "struct_specifier": "struct", "enum_specifier": "enum",
           "union_specifier": "union", "type_definition": "type"}, frozenset()),
    "cpp": ({"function_definition": "function", "struct_specifier": "struct", "enum_specifier": "enum",
             "union_specifier": "union", "class_specifier": "class", "namespace_definition": "namespace",
             "type_definition": "type", "concept_definition": "type"},
            frozenset({"template_declaration"})),
    "csharp": ({"class_declaration": "class", "struct_declaration": "struct", "interface_declaration": "interface",
                "enum_declaration": "enum", "record_declaration": "class", "record_struct_declaration": "struct",
                "namespace_declaration": "namespace", "file_scoped_namespace_declaration": "namespace",
                "method_declaration": "method", "constructor_declaration": "method",
                "destructor_declaration": "method", "property_declaration": "property",
                "local_function_statement": "function", "operator_declaration": "method"}, frozenset()),
    "ruby": ({"method": "method", "singleton_method": "method", "class": "class", "module": "namespace",
              "singleton_class": "class"}, frozenset()),
    "php": ({"function_definition": "function", "method_declaration": "method", "class_declaration": "class",
             "interface_declaration": "interface", "trait_declaration": "trait", "enum_declaration": "enum",
             "namespace_definition": "namespace"}, frozenset()),
    "bash": ({"function_definition": "function"}, frozenset()),
}

_C_NAME_TYPES = frozenset({"identifier", "field_identifier", "qualified_identifier", "destructor_name",
                           "operator_name", "type_identifier", "primitive_type"})


class ParseFailed(Exception):
    """The file could not be parsed (exception or deadline); the message is the user-facing reason."""


def _text(node: Any) -> str:
    raw = node.text
    if raw is None:
        return ""
    return " ".join(raw.decode("utf-8", "replace").split())


def _short_type(text: str) -> str:
    """``Foo<T>`` / ``&'a mut Foo`` → ``Foo`` (for qualifying methods of impl blocks)."""
    for sep in ("<", "("):
        cut = text.find(sep)
        if cut > 0:
            text = text[:cut]
    return text.lstrip("&*'mut ").strip() or text


def _def_name(node: Any, lang: str) -> str:
    t = node.type
    if t == "impl_item":
        ty = node.child_by_field_name("type")
        tr = node.child_by_field_name("trait")
        name = _short_type(_text(ty)) if ty is not None else ""
        if tr is not None:
            return f"{_short_type(_text(tr))} for {name}"
        return name
    if t == "method_declaration" and lang == "go":
        name = node.child_by_field_name("name")
        recv = node.child_by_field_name("receiver")
        base = _text(name) if name is not None else ""
        if recv is not None:
            for param in recv.named_children:
                ty = param.child_by_field_name("type")
                if ty is not None:
                    return f"{_short_type(_text(ty).lstrip('*'))}.{base}"
        return base
    if t in ("function_definition", "type_definition") and lang in ("c", "cpp") or t == "function_declarator":
        decl = node.child_by_field_name("declarator")
        for _ in range(16):
            if decl is None:
                return ""
            if decl.type in _C_NAME_TYPES:
                return _text(decl)
            nxt = decl.child_by_field_name("declarator")
            if nxt is None:
                nxt = decl.child_by_field_name("name")
            decl = nxt
        return ""
    if t == "assignment_expression":
        left = node.child_by_field_name("left")
        return _text(left) if left is not None else ""
    name = node.child_by_field_name("name")
    if name is None:
        return ""
    return _text(name)


def _def_kind(node: Any, defs: dict[str, str]) -> str | None:
    kind = defs.get(node.type)
    if kind is None:
        return None
    t = node.type
    if t == "variable_declarator":
        value = node.child_by_field_name("value")
        if value is None or value.type not in _FUNCTION_VALUES:
            return None
        return "class" if "class" in value.type else "function"
    if t == "assignment_expression":
        value = node.child_by_field_name("right")
        if value is None or value.type not in _FUNCTION_VALUES:
            return None
        return "class" if "class" in value.type else "function"
    if t == "type_spec":
        ty = node.child_by_field_name("type")
        if ty is not None:
            if ty.type == "struct_type":
                return "struct"
            if ty.type == "interface_type":
                return "interface"
    return kind


class _Ctx:
    """The definition enclosing a region: what its chunks are called."""

    __slots__ = ("symbol", "kind", "root", "node_id")

    def __init__(self, symbol: str, kind: str, root: bool = False, node_id: int = -1) -> None:
        self.symbol = symbol
        self.kind = kind
        self.root = root
        self.node_id = node_id  # the definition node this context was made from


class SyntaxChunker:
    def __init__(self, lang: str, costs: LineCosts) -> None:
        self.lang = lang
        self.costs = costs
        self.defs, self.wrappers = SPECS[lang]
        self.small = max(1, costs.max_tokens // SMALL_FRACTION)
        self.notes: list[str] = []

    # -- definitions -----------------------------------------------------------------
    def def_of(self, node: Any) -> Any | None:
        """The definition ``node`` is, or that it wraps (export, decorator, template)."""
        defs, wrappers = self.defs, self.wrappers
        for _ in range(4):
            t = node.type
            if t in defs:
                return node if _def_kind(node, defs) else None
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
        kind = _def_kind(dnode, self.defs) or "function"
        name = _def_name(dnode, self.lang)
        if kind == "function" and not parent.root and parent.kind in CLASS_KINDS:
            kind = "method"
        if not parent.root and parent.symbol and name and parent.kind != "namespace":
            symbol = f"{parent.symbol}.{name}"
        else:
            symbol = name or parent.symbol
        return _Ctx(symbol[:SYMBOL_CHARS], kind, node_id=dnode.id)

    # -- the split-then-merge ----------------------------------------------------------
    def chunk_tree(self, root: Any, total_lines: int) -> list[Segment]:
        return self.split(root, 1, total_lines, _Ctx("", "module", root=True), 0)

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

        # Partition lo..hi into pieces [start, end, members]: a child owns the lines after
        # the previous piece up to its own last line; children ending on an already owned
        # line join that piece.
        pieces: list[list[Any]] = []
        cur = lo
        pending: list[Any] = []
        for child in children:
            erow = child.end_point[0]
            srow = child.start_point[0]
            end = erow if (child.end_point[1] == 0 and erow > srow) else erow + 1
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

        def flush() -> None:
            nonlocal acc
            if acc is None:
                return
            a_start, a_end, a_defs, _ = acc
            acc = None
            if (after_split and not a_defs and out and costs.fits(out[-1][0], a_end)
                    and costs.cost(a_start, a_end) < small and self._attached(out[-1][1], a_start, a_end)):
                last = out[-1]
                out[-1] = (last[0], a_end, last[2], last[3])
                return
            if len(a_defs) == 1:
                c = self.ctx_for(a_defs[0], ctx)
                out.append((a_start, a_end, c.symbol, c.kind))
            else:
                out.append((a_start, a_end, ctx.symbol, ctx.kind))

        for start, end, members in pieces:
            defs = []
            leading = True
            for m in members:
                d = self.def_of(m)
                if d is not None:
                    defs.append(d)
                if m.type not in LEADING_TYPES:
                    leading = False
            if costs.fits(start, end):
                if acc is not None:
                    a_start, a_end, a_defs, a_leading = acc
                    merge = costs.fits(a_start, end)
                    if merge and a_defs and defs and (
                        costs.cost(a_start, a_end) >= small or costs.cost(start, end) >= small
                    ):
                        merge = False
                    if merge and leading and a_defs:
                        merge = False  # a comment before a definition goes with what follows
                    if merge:
                        acc = [a_start, end, a_defs + defs, a_leading and leading]
                        continue
                    flush()
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
                if (not a_defs and costs.cost(a_start, a_end) <= costs.max_tokens // 2
                        and (a_leading or (not ctx.root and a_start == lo)
                             or self._attached(a_end, a_end + 1, member.start_point[0] + 1))):
                    first = a_start  # header lines / leading comments go with the first piece
                    acc = None
                else:
                    flush()
            out.extend(self.split(member, first, end, child_ctx, depth + 1))
            after_split = True
        flush()
        return out

    def _attached(self, prev_end: int, start: int, end: int) -> bool:
        """No blank line between the last non-blank line up to ``prev_end`` and lines ``start..end``."""
        costs = self.costs
        if end < start:
            return True
        first = costs.first_nonblank(start, end)
        if first is None:
            return False
        return first == start and (prev_end < 1 or not costs.blank[prev_end - 1])


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
