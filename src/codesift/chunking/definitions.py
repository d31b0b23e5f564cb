"""What a definition is in each language: which syntax nodes define a symbol, its name and kind.

The split-then-merge in ``syntax`` is language-neutral; it asks this module three things
about a node: is it a definition (and of what kind), what is it called, and is it a
leading node (a comment, decorator, doc attribute or type signature) that belongs with
the definition after it. The answers feed the ``symbol``/``kind`` of every chunk, which
the ranking layer's symbol table reads ("definitions first"), so a name is qualified with
its enclosing scope (``Client.send``, ``Ecto.Repo.get``) the way users write it: scopes
joined by ``.``, whatever the language's own separator (``::``, ``:``).

A chunk's ``symbol`` is: the qualified name of the one definition it holds (or is part
of, when a definition is split over several chunks, or documents, for a doc comment
too long to share its definition's chunk); or ``a, b, c`` when several small
definitions share it (a name never contains ``", "``, so splitting on it is safe); or
the enclosing definition's name for code between definitions; or ``""`` at the top of
a file outside any definition (kind ``module``). Module-level variables and constants
are named only when no function or type shares their chunk.

Kinds form a small shared vocabulary: ``class``, ``interface``, ``struct``, ``enum``,
``union``, ``trait``, ``impl``, ``namespace``, ``module``, ``function``, ``method``,
``macro``, ``type``, ``property``, ``variable``, ``constant``, ``test``, and for data and build formats ``section``,
``table``, ``view``, ``index``, ``trigger``, ``rule``, ``stage``, ``block``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

# module-level variables and constants: named, but merged like plain statements
LIGHT_KINDS = frozenset({"variable", "constant"})
# kinds whose functions are methods (and that qualify the names inside them)
CLASS_KINDS = frozenset({"class", "interface", "struct", "enum", "impl", "trait", "union"})
# kinds whose names do not qualify what they contain: a namespace often wraps a whole
# file, and users search ``Shape``, not ``geo.Shape``
UNQUALIFYING_KINDS = frozenset({"namespace"})

COMMON_LEADING = frozenset({"comment", "line_comment", "block_comment", "attribute_item", "decorator",
                            "annotation", "marker_annotation", "attribute_list", "multiline_comment",
                            "documentation_comment", "haddock"})

Node = Any


@dataclass(frozen=True)
class Spec:
    """How one language's definitions are recognised.

    ``defs`` maps node types to kinds; ``kind_of`` may refine or veto (``None``) that
    kind by looking at the node; ``name_of`` overrides the default (the ``name`` field);
    ``scope_of`` gives the prefix the definition's members are qualified with (default:
    its own symbol); ``leading`` adds leading node types; ``is_leading`` decides by
    content (Elixir's ``@doc``). ``flat`` languages never qualify nested names (HTML,
    CSS). ``stage_starts`` splits a flat list of instructions into named stages
    (Dockerfile ``FROM``). ``bodies`` are node types that hold the body of the
    definition just before them (Dart puts a function's signature and body side by side).
    ``is_light`` marks definitions that are named but merged like plain statements (a
    TOML key, a JSON scalar), so that naming them does not cut a file into more chunks.
    """

    defs: Mapping[str, str]
    wrappers: frozenset[str] = frozenset()
    kind_of: Callable[[Node, str], str | None] | None = None
    name_of: Callable[[Node], str] | None = None
    scope_of: Callable[[Node, str], str] | None = None
    leading: frozenset[str] = frozenset()
    is_leading: Callable[[Node], bool] | None = None
    flat: bool = False
    stage_starts: frozenset[str] = field(default_factory=frozenset)
    bodies: frozenset[str] = field(default_factory=frozenset)
    is_light: Callable[[Node], bool] | None = None


def text_of(node: Node | None) -> str:
    """The node's source text with whitespace runs collapsed to one space."""
    if node is None:
        return ""
    raw = node.text
    if raw is None:
        return ""
    return " ".join(raw.decode("utf-8", "replace").split())


def _field_text(node: Node, name: str) -> str:
    return text_of(node.child_by_field_name(name))


def _first_child(node: Node, types: frozenset[str] | set[str] | tuple[str, ...]) -> Node | None:
    for child in node.named_children:
        if child.type in types:
            return child
    return None


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return text[1:-1]
    return text


def short_type(text: str) -> str:
    """``Foo<T>`` / ``&'a mut Foo`` / ``fmt::Display`` → ``Foo`` / ``Foo`` / ``fmt.Display``."""
    for sep in ("<", "(", "["):
        cut = text.find(sep)
        if cut > 0:
            text = text[:cut]
    text = text.strip()
    while text.startswith(("&", "*", "'")):
        text = text[1:]
        if text.startswith("'"):
            text = text.split(" ", 1)[-1]
        text = text.strip()
    if text.startswith("mut "):
        text = text[4:]
    if text.startswith("dyn "):
        text = text[4:]
    return text.replace("::", ".").strip()


# -- the languages that were there first -------------------------------------------------

_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function",
                              "class", "class_expression"})

_JS_DEFS = {
    "function_declaration": "function", "generator_function_declaration": "function",
    "class_declaration": "class", "class": "class", "method_definition": "method",
    "variable_declarator": "function",  # only when its value is a function (see _js_kind)
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


def _js_kind(node: Node, kind: str) -> str | None:
    t = node.type
    if t in ("variable_declarator", "assignment_expression"):
        value = node.child_by_field_name("value" if t == "variable_declarator" else "right")
        if value is not None and value.type in _FUNCTION_VALUES:
            return "class" if "class" in value.type else "function"
        if t == "variable_declarator" and _js_module_constant(node, value):
            return "variable"
        return None
    return kind


def _js_module_constant(node: Node, value: Node | None) -> bool:
    """``export const LIMIT = 10`` at the top of a module (not ``const fs = require("fs")``)."""
    name = node.child_by_field_name("name")
    if name is None or name.type != "identifier" or value is None:
        return False
    if value.type in ("call_expression", "await_expression"):
        callee = value.named_children[0] if value.named_children else None
        if callee is not None and text_of(callee).split("(")[0] in ("require", "import", "await import"):
            return False
    decl = node.parent
    top = decl.parent if decl is not None else None
    if top is not None and top.type == "export_statement":
        top = top.parent
    return top is not None and top.type == "program"


def _python_kind(node: Node, kind: str) -> str | None:
    if node.type == "assignment":
        # a module-level ``NAME = ...``: constants and type aliases users look up by name
        stmt = node.parent
        left = node.child_by_field_name("left")
        if (stmt is None or stmt.type != "expression_statement" or stmt.parent is None
                or stmt.parent.type != "module" or left is None or left.type != "identifier"):
            return None
    return kind


def _python_name(node: Node) -> str:
    if node.type in ("assignment", "type_alias_statement"):
        return _field_text(node, "left")
    return _field_text(node, "name")


def _js_name(node: Node) -> str:
    if node.type == "assignment_expression":
        return _field_text(node, "left")
    return _field_text(node, "name")


def _go_kind(node: Node, kind: str) -> str | None:
    if node.type == "type_spec":
        ty = node.child_by_field_name("type")
        if ty is not None:
            if ty.type == "struct_type":
                return "struct"
            if ty.type == "interface_type":
                return "interface"
    return kind


def _go_name(node: Node) -> str:
    base = _field_text(node, "name")
    if node.type == "method_declaration":
        recv = node.child_by_field_name("receiver")
        if recv is not None:
            for param in recv.named_children:
                ty = param.child_by_field_name("type")
                if ty is not None:
                    return f"{short_type(text_of(ty).lstrip('*'))}.{base}"
    return base


def _rust_name(node: Node) -> str:
    if node.type == "impl_item":
        ty = node.child_by_field_name("type")
        tr = node.child_by_field_name("trait")
        name = short_type(text_of(ty)) if ty is not None else ""
        if tr is not None:
            return f"{short_type(text_of(tr))} for {name}"
        return name
    return _field_text(node, "name")


def _rust_scope(node: Node, symbol: str) -> str:
    """An impl block's methods belong to its type: ``Point.fmt``, not ``Display for Point.fmt``."""
    if node.type == "impl_item":
        ty = node.child_by_field_name("type")
        return short_type(text_of(ty)) if ty is not None else symbol
    return symbol


_C_NAME_TYPES = frozenset({"identifier", "field_identifier", "qualified_identifier", "destructor_name",
                           "operator_name", "type_identifier", "primitive_type", "template_function",
                           "namespace_identifier"})


def _c_declarator_name(node: Node) -> str:
    decl = node.child_by_field_name("declarator")
    for _ in range(16):
        if decl is None:
            return ""
        if decl.type in _C_NAME_TYPES:
            if decl.type == "operator_name":
                return text_of(decl)
            return _without_template_args(text_of(decl)).replace("::", ".").strip(".")
        nxt = decl.child_by_field_name("declarator")
        if nxt is None:
            nxt = decl.child_by_field_name("name")
        decl = nxt
    return ""


# googletest's ``TEST(Suite, Name) { ... }`` parses as a function named TEST
_GTEST_MACROS = frozenset({"TEST", "TEST_F", "TEST_P", "TYPED_TEST", "TYPED_TEST_P", "FUZZ_TEST"})


def _gtest_name(node: Node) -> str | None:
    decl = node.child_by_field_name("declarator")
    if decl is None or decl.type != "function_declarator":
        return None
    if text_of(decl.child_by_field_name("declarator")) not in _GTEST_MACROS:
        return None
    params = decl.child_by_field_name("parameters")
    words = [text_of(p) for p in params.named_children] if params is not None else []
    return ".".join(w for w in words if w) or None


def _without_template_args(text: str) -> str:
    """``Vec<T>::size`` → ``Vec::size`` (the arguments say nothing about the name)."""
    if "<" not in text:
        return text
    cut = text.find("operator")
    if cut >= 0:  # ``Foo<T>::operator<<``: only the scope may hold template arguments
        return _without_template_args(text[:cut]) + text[cut:] if cut else text
    out: list[str] = []
    depth = 0
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif not depth:
            out.append(ch)
    return "".join(out).strip()


def _c_name(node: Node) -> str:
    if node.type == "function_definition":
        return _gtest_name(node) or _c_declarator_name(node)
    if node.type == "type_definition":
        return _c_declarator_name(node)
    if node.type == "namespace_definition":
        return _field_text(node, "name").replace("::", ".")
    return _field_text(node, "name")


def _c_kind(node: Node, kind: str) -> str | None:
    if node.type in ("struct_specifier", "class_specifier", "union_specifier", "enum_specifier"):
        # ``struct point p;`` names a type, it does not define one
        if node.child_by_field_name("body") is None:
            return None
    if node.type == "function_definition":
        if _gtest_name(node):
            return "test"
        if "." in _c_declarator_name(node):
            return "method"  # ``int Foo::size() const { ... }``
    return kind


# -- new languages -----------------------------------------------------------------------

def _kotlin_kind(node: Node, kind: str) -> str | None:
    if node.type == "class_declaration":
        for child in node.children:
            if child.type == "interface":
                return "interface"
            if child.type == "modifiers" and "enum" in text_of(child).split():
                return "enum"
    return kind


def _kotlin_name(node: Node) -> str:
    t = node.type
    if t == "type_alias":
        return _field_text(node, "type")
    if t == "companion_object":
        name = node.child_by_field_name("name") or _first_child(node, ("identifier", "simple_identifier"))
        return text_of(name) or "Companion"
    if t == "secondary_constructor":
        return "constructor"
    name_node = node.child_by_field_name("name")
    name = text_of(name_node)
    if t == "function_declaration" and name_node is not None:
        # an extension function: ``fun String.shout()`` → ``String.shout``
        for child in node.children:
            if child.id == name_node.id:
                break
            if child.type in ("user_type", "nullable_type"):
                return f"{short_type(text_of(child))}.{name}"
    return name


def _scala_name(node: Node) -> str:
    if node.type == "extension_definition":
        params = node.child_by_field_name("parameters")
        text = text_of(params)
        if ":" in text:
            return short_type(text.split(":", 1)[1].strip(" )"))
        return text
    return _field_text(node, "name")


_SWIFT_DECL_KINDS = {"class": "class", "struct": "struct", "enum": "enum", "extension": "impl",
                     "actor": "class"}


def _swift_kind(node: Node, kind: str) -> str | None:
    if node.type == "class_declaration":
        decl = node.child_by_field_name("declaration_kind")
        return _SWIFT_DECL_KINDS.get(text_of(decl), "class")
    return kind


def _swift_name(node: Node) -> str:
    t = node.type
    if t == "init_declaration":
        return "init"
    if t == "deinit_declaration":
        return "deinit"
    if t == "subscript_declaration":
        return "subscript"
    name = node.child_by_field_name("name")
    return short_type(text_of(name))


# Elixir: definitions are calls (``def name(args) do ... end``), told apart by their target.
_ELIXIR_DEFS = {
    "defmodule": "module", "defprotocol": "interface", "defimpl": "impl",
    "def": "function", "defp": "function", "defmacro": "macro", "defmacrop": "macro",
    "defguard": "function", "defguardp": "function", "defdelegate": "function",
    "defn": "function", "defnp": "function",
}
_ELIXIR_LEADING_ATTRS = frozenset({"doc", "spec", "impl", "typedoc", "deprecated", "dialyzer", "decorate"})


def _elixir_target(node: Node) -> str:
    target = node.child_by_field_name("target")
    return text_of(target) if target is not None and target.type == "identifier" else ""


def _elixir_kind(node: Node, kind: str) -> str | None:
    return _ELIXIR_DEFS.get(_elixir_target(node))


def _elixir_name(node: Node) -> str:
    args = _first_child(node, ("arguments",))
    if args is None or not args.named_children:
        return ""
    first = args.named_children[0]
    target = _elixir_target(node)
    if target in ("defmodule", "defprotocol"):
        return text_of(first)
    if target == "defimpl":
        # ``defimpl Size, for: Map`` is the module ``Size.Map``
        for kw in args.named_children[1:]:
            if kw.type == "keywords":
                for pair in kw.named_children:
                    key = pair.child_by_field_name("key")
                    if key is not None and text_of(key).rstrip(": ") == "for":
                        return f"{text_of(first)}.{text_of(pair.child_by_field_name('value'))}"
        return text_of(first)
    # ``name(args)``, ``name(args) when guard``, ``name``, ``a + b``
    for _ in range(4):
        if first.type == "binary_operator":
            left = first.child_by_field_name("left")
            if left is None:
                break
            first = left
            continue
        if first.type == "call":
            tgt = first.child_by_field_name("target")
            return text_of(tgt) if tgt is not None else text_of(first)
        break
    return text_of(first)


def _elixir_scope(node: Node, symbol: str) -> str:
    """What a macro's ``quote`` defines lands in the module that uses it, not in the macro."""
    if _elixir_target(node) in ("defmacro", "defmacrop"):
        return symbol.rsplit(".", 1)[0] if "." in symbol else ""
    return symbol


def _elixir_leading(node: Node) -> bool:
    """``@doc``/``@spec``/``@impl`` attributes document the definition after them."""
    if node.type != "unary_operator":
        return False
    operand = node.child_by_field_name("operand")
    if operand is None:
        return False
    if operand.type == "call":
        return _elixir_target(operand) in _ELIXIR_LEADING_ATTRS
    return operand.type == "identifier" and text_of(operand) in _ELIXIR_LEADING_ATTRS


def _haskell_name(node: Node) -> str:
    if node.type == "instance":
        name = _field_text(node, "name")
        pats = _field_text(node, "patterns")
        return f"{name} {pats}".strip()
    return _field_text(node, "name")


def _haskell_scope(node: Node, symbol: str) -> str:
    # instance methods are the class's own methods; do not prefix them with "Show Foo"
    return "" if node.type == "instance" else symbol


def _lua_kind(node: Node, kind: str) -> str | None:
    t = node.type
    if t == "function_declaration":
        name = node.child_by_field_name("name")
        return "method" if name is not None and name.type == "method_index_expression" else "function"
    if t in ("assignment_statement", "variable_declaration"):
        return "function" if _lua_assigned_function(node) is not None else None
    return kind


def _lua_assigned_function(node: Node) -> Node | None:
    """``M.f = function () end`` / ``local f = function () end``: the name, when a function is assigned."""
    if node.type == "variable_declaration":
        node = _first_child(node, ("assignment_statement",))
        if node is None:
            return None
    names = _first_child(node, ("variable_list",))
    values = _first_child(node, ("expression_list",))
    if names is None or values is None or len(names.named_children) != 1 or len(values.named_children) != 1:
        return None
    if values.named_children[0].type != "function_definition":
        return None
    return names.named_children[0]


def _lua_name(node: Node) -> str:
    if node.type == "function_declaration":
        return _field_text(node, "name").replace(":", ".")
    return text_of(_lua_assigned_function(node)).replace(":", ".")


_ZIG_CONTAINERS = {"struct_declaration": "struct", "enum_declaration": "enum", "union_declaration": "union",
                   "opaque_declaration": "struct", "error_set_declaration": "enum"}


def _zig_kind(node: Node, kind: str) -> str | None:
    if node.type == "variable_declaration":
        for child in node.named_children:
            if child.type in _ZIG_CONTAINERS:
                return _ZIG_CONTAINERS[child.type]
        return None
    return kind


def _zig_name(node: Node) -> str:
    t = node.type
    if t == "variable_declaration":
        return text_of(_first_child(node, ("identifier",)))
    if t == "test_declaration":
        label = _first_child(node, ("string", "identifier"))
        return f"test {_unquote(text_of(label))}".strip()
    return _field_text(node, "name")


_DART_SIGNATURES = frozenset({"function_signature", "method_signature", "getter_signature", "setter_signature",
                              "constructor_signature", "factory_constructor_signature", "operator_signature",
                              "redirecting_factory_constructor_signature", "constant_constructor_signature"})


def _dart_kind(node: Node, kind: str) -> str | None:
    if node.type == "declaration":
        # inside a class body: an abstract method or a constructor, not a field
        return "method" if _first_child(node, _DART_SIGNATURES) is not None else None
    return kind


def _dart_name(node: Node) -> str:
    t = node.type
    if t in ("mixin_declaration", "type_alias"):
        return text_of(_first_child(node, ("identifier", "type_identifier")))
    if t in ("method_signature", "declaration"):
        inner = _first_child(node, _DART_SIGNATURES)
        if inner is not None:
            node = inner
    name = node.child_by_field_name("name")
    if name is not None:
        return text_of(name)
    if node.type in ("constructor_signature", "factory_constructor_signature",
                     "constant_constructor_signature", "redirecting_factory_constructor_signature"):
        return ".".join(text_of(c) for c in node.named_children if c.type == "identifier")
    if node.type == "operator_signature":
        return "operator"
    return text_of(_first_child(node, ("identifier",)))


# -- data and build formats ---------------------------------------------------------------

_YAML_CONTAINERS = frozenset({"block_mapping", "block_sequence", "flow_mapping", "flow_sequence"})


def _yaml_value(node: Node) -> Node | None:
    value = node.child_by_field_name("value")
    if value is not None and value.type in ("block_node", "flow_node") and value.named_children:
        return value.named_children[-1]
    return value


def _yaml_kind(node: Node, kind: str) -> str | None:
    """A key whose value is a mapping or list, or any key at the top of a document, is a section;
    so is a named list item (``- name: Run tests``)."""
    if node.type == "block_sequence_item":
        return kind if _yaml_item_label(node) else None
    value = _yaml_value(node)
    if value is not None and value.type in _YAML_CONTAINERS:
        return kind
    parent = node.parent  # block_mapping
    grand = parent.parent if parent is not None else None  # block_node
    top = grand.parent if grand is not None else None
    return kind if top is not None and top.type == "document" else None


_YAML_ITEM_KEYS = ("name", "id", "key", "job", "task")


def _yaml_item_label(node: Node) -> str:
    """A list item that is a mapping with a ``name:`` (CI steps, containers, tasks)."""
    body = node.named_children[-1] if node.named_children else None
    if body is None or body.type != "block_node" or not body.named_children:
        return ""
    mapping = body.named_children[0]
    if mapping.type != "block_mapping":
        return ""
    for pair in mapping.named_children:
        if pair.type == "block_mapping_pair" and _yaml_name(pair) in _YAML_ITEM_KEYS:
            value = _yaml_value(pair)
            if value is not None and value.type in ("plain_scalar", "double_quote_scalar", "single_quote_scalar"):
                return _unquote(text_of(value))
    return ""


def _yaml_name(node: Node) -> str:
    if node.type == "block_sequence_item":
        return _yaml_item_label(node)
    return _unquote(_field_text(node, "key"))


def _toml_kind(node: Node, kind: str) -> str | None:
    if node.type == "pair":
        value = node.named_children[-1] if node.named_children else None
        return kind if value is not None and value.type in ("inline_table", "array") else None
    return kind


def _data_scalar(node: Node) -> bool:
    """A key whose value is not a table, mapping or list: named, but merged freely."""
    if node.type == "pair" and node.parent is not None and node.parent.type in ("document", "table",
                                                                                 "table_array_element"):
        return True  # TOML: every key of a table
    value = _yaml_value(node) if node.type == "block_mapping_pair" else node.child_by_field_name("value")
    return value is None or value.type not in _YAML_CONTAINERS | {"object", "array"}


def _toml_name(node: Node) -> str:
    key = _first_child(node, ("bare_key", "dotted_key", "quoted_key"))
    return ".".join(_unquote(part.strip()) for part in text_of(key).split("."))


def _json_kind(node: Node, kind: str) -> str | None:
    value = node.child_by_field_name("value")
    if value is not None and value.type in ("object", "array"):
        return kind
    parent = node.parent
    top = parent.parent if parent is not None else None
    return kind if top is not None and top.type == "document" else None


def _json_name(node: Node) -> str:
    return _unquote(_field_text(node, "key"))


_SQL_DEFS = {
    "create_table": "table", "create_view": "view", "create_materialized_view": "view",
    "create_function": "function", "create_procedure": "function", "create_index": "index",
    "create_trigger": "trigger", "create_type": "type", "create_schema": "namespace",
    "create_sequence": "type", "create_domain": "type", "create_extension": "module",
}


def _sql_name(node: Node) -> str:
    ref = _first_child(node, ("object_reference",))
    if node.type == "create_index":
        col = node.child_by_field_name("column")
        if col is not None:
            return text_of(col)
    if ref is None:
        ref = _first_child(node, ("identifier",))
    return text_of(ref).replace('"', "").replace("`", "")


_HTML_SECTIONS = frozenset({"html", "head", "body", "header", "footer", "main", "nav", "section", "article",
                            "aside", "form", "table", "dialog", "template", "svg", "ul", "ol", "dl",
                            "h1", "h2", "h3", "h4", "h5", "h6"})


def _html_tag(node: Node) -> tuple[str, str]:
    start = _first_child(node, ("start_tag", "self_closing_tag"))
    if start is None:
        return "", ""
    tag = text_of(_first_child(start, ("tag_name",))).lower()
    ident = ""
    for attr in start.named_children:
        if attr.type == "attribute" and text_of(_first_child(attr, ("attribute_name",))).lower() == "id":
            value = _first_child(attr, ("quoted_attribute_value", "attribute_value"))
            ident = _unquote(text_of(value))
    return tag, ident


def _html_kind(node: Node, kind: str) -> str | None:
    tag, ident = _html_tag(node)
    return kind if ident or tag in _HTML_SECTIONS else None


def _html_name(node: Node) -> str:
    tag, ident = _html_tag(node)
    return f"{tag}#{ident}" if ident else tag


def _css_name(node: Node) -> str:
    t = node.type
    if t == "rule_set":
        return text_of(_first_child(node, ("selectors",)))
    if t == "keyframes_statement":
        return f"@keyframes {text_of(_first_child(node, ('keyframes_name',)))}"
    # @media / @supports / other at-rules: the rule and its query, without the body
    head = []
    for child in node.children:
        if child.type == "block":
            break
        head.append(text_of(child))
    return " ".join(h for h in head if h)


def _make_kind(node: Node, kind: str) -> str | None:
    if node.type == "rule" and text_of(_first_child(node, ("targets",))).startswith("."):
        return None  # ``.PHONY``, ``.SUFFIXES``: directives to make, not targets a user means
    return kind


def _make_name(node: Node) -> str:
    if node.type == "rule":
        return text_of(_first_child(node, ("targets",)))
    return _field_text(node, "name")


_HCL_ADDRESS_PREFIX = {"resource": "", "variable": "var.", "data": "data.", "module": "module.",
                       "output": "output."}


def _hcl_name(node: Node) -> str:
    """``resource "aws_s3_bucket" "logs"`` → ``aws_s3_bucket.logs`` (Terraform's own address)."""
    ident = text_of(_first_child(node, ("identifier",)))
    labels = [_unquote(text_of(c)) for c in node.named_children if c.type in ("string_lit", "identifier")][1:]
    if not labels:
        return ident
    prefix = _HCL_ADDRESS_PREFIX.get(ident, f"{ident}.")
    return prefix + ".".join(labels)


def _starlark_target(node: Node) -> str | None:
    """``cc_library(name = "strings", ...)``: a build target, named by its ``name`` argument."""
    if node.type != "call":
        return None
    args = node.child_by_field_name("arguments")
    if args is None:
        return None
    for arg in args.named_children:
        if arg.type == "keyword_argument" and _field_text(arg, "name") == "name":
            value = arg.child_by_field_name("value")
            if value is not None and value.type == "string":
                return _unquote(text_of(value))
    return None


def _starlark_kind(node: Node, kind: str) -> str | None:
    if node.type == "call":
        return "rule" if _starlark_target(node) else None
    return kind


def _starlark_name(node: Node) -> str:
    if node.type == "call":
        return _starlark_target(node) or ""
    return _field_text(node, "name")


# -- the table ---------------------------------------------------------------------------

SPECS: dict[str, Spec] = {
    "python": Spec({"function_definition": "function", "class_definition": "class", "assignment": "variable",
                    "type_alias_statement": "type"},
                   frozenset({"decorated_definition", "expression_statement"}),
                   kind_of=_python_kind, name_of=_python_name),
    "javascript": Spec(_JS_DEFS, _JS_WRAPPERS, kind_of=_js_kind, name_of=_js_name),
    "typescript": Spec(_TS_DEFS, _JS_WRAPPERS, kind_of=_js_kind, name_of=_js_name),
    "tsx": Spec(_TS_DEFS, _JS_WRAPPERS, kind_of=_js_kind, name_of=_js_name),
    "go": Spec({"function_declaration": "function", "method_declaration": "method", "type_spec": "type"},
               frozenset({"type_declaration"}), kind_of=_go_kind, name_of=_go_name),
    "rust": Spec({"function_item": "function", "function_signature_item": "function", "impl_item": "impl",
                  "trait_item": "trait", "struct_item": "struct", "enum_item": "enum", "union_item": "union",
                  "mod_item": "namespace", "macro_definition": "macro", "type_item": "type",
                  "const_item": "constant", "static_item": "constant"},
                 name_of=_rust_name, scope_of=_rust_scope),
    "java": Spec({"class_declaration": "class", "interface_declaration": "interface", "enum_declaration": "enum",
                  "record_declaration": "class", "annotation_type_declaration": "interface",
                  "method_declaration": "method", "constructor_declaration": "method",
                  "compact_constructor_declaration": "method"}),
    "c": Spec({"function_definition": "function", "struct_specifier": "struct", "enum_specifier": "enum",
               "union_specifier": "union", "type_definition": "type", "preproc_function_def": "macro",
               "preproc_def": "macro"},
              kind_of=_c_kind, name_of=_c_name),
    "cpp": Spec({"function_definition": "function", "struct_specifier": "struct", "enum_specifier": "enum",
                 "union_specifier": "union", "class_specifier": "class", "namespace_definition": "namespace",
                 "type_definition": "type", "concept_definition": "type", "alias_declaration": "type",
                 "preproc_function_def": "macro", "preproc_def": "macro"},
                frozenset({"template_declaration"}), kind_of=_c_kind, name_of=_c_name),
    "csharp": Spec({"class_declaration": "class", "struct_declaration": "struct",
                    "interface_declaration": "interface", "enum_declaration": "enum",
                    "record_declaration": "class", "record_struct_declaration": "struct",
                    "namespace_declaration": "namespace", "file_scoped_namespace_declaration": "namespace",
                    "method_declaration": "method", "constructor_declaration": "method",
                    "destructor_declaration": "method", "property_declaration": "property",
                    "local_function_statement": "function", "operator_declaration": "method",
                    "delegate_declaration": "type"}),
    "ruby": Spec({"method": "method", "singleton_method": "method", "class": "class", "module": "namespace",
                  "singleton_class": "class"}),
    "php": Spec({"function_definition": "function", "method_declaration": "method", "class_declaration": "class",
                 "interface_declaration": "interface", "trait_declaration": "trait", "enum_declaration": "enum",
                 "namespace_definition": "namespace"}),
    "bash": Spec({"function_definition": "function"}),
    "starlark": Spec({"function_definition": "function", "call": "rule"},
                     frozenset({"decorated_definition", "expression_statement"}),
                     kind_of=_starlark_kind, name_of=_starlark_name),
    "kotlin": Spec({"class_declaration": "class", "object_declaration": "class", "companion_object": "class",
                    "function_declaration": "function", "type_alias": "type",
                    "secondary_constructor": "method"},
                   kind_of=_kotlin_kind, name_of=_kotlin_name),
    "scala": Spec({"class_definition": "class", "object_definition": "class", "trait_definition": "trait",
                   "enum_definition": "enum", "type_definition": "type", "function_definition": "function",
                   "function_declaration": "function", "extension_definition": "impl",
                   "package_object": "module", "given_definition": "function"},
                  name_of=_scala_name),
    "swift": Spec({"class_declaration": "class", "protocol_declaration": "interface",
                   "function_declaration": "function", "protocol_function_declaration": "method",
                   "init_declaration": "method", "deinit_declaration": "method",
                   "subscript_declaration": "method", "typealias_declaration": "type"},
                  kind_of=_swift_kind, name_of=_swift_name),
    "elixir": Spec({"call": "function"}, kind_of=_elixir_kind, name_of=_elixir_name, scope_of=_elixir_scope,
                   is_leading=_elixir_leading),
    "haskell": Spec({"function": "function", "bind": "function", "data_type": "type", "newtype": "type",
                     "type_synonym": "type", "type_family": "type", "class": "class", "instance": "impl",
                     "data_family": "type", "pattern_synonym": "function"},
                    name_of=_haskell_name, scope_of=_haskell_scope,
                    leading=frozenset({"signature", "pragma"})),
    "lua": Spec({"function_declaration": "function", "assignment_statement": "function",
                 "variable_declaration": "function"},
                kind_of=_lua_kind, name_of=_lua_name),
    "zig": Spec({"function_declaration": "function", "variable_declaration": "struct",
                 "test_declaration": "test"},
                kind_of=_zig_kind, name_of=_zig_name),
    "dart": Spec({"class_definition": "class", "mixin_declaration": "trait", "extension_declaration": "impl",
                  "enum_declaration": "enum", "type_alias": "type", "function_signature": "function",
                  "method_signature": "method", "declaration": "method"},
                 kind_of=_dart_kind, name_of=_dart_name, bodies=frozenset({"function_body"})),
    "yaml": Spec({"block_mapping_pair": "section", "block_sequence_item": "section"}, kind_of=_yaml_kind,
                 name_of=_yaml_name, is_light=_data_scalar),
    "toml": Spec({"table": "section", "table_array_element": "section", "pair": "section"},
                 kind_of=_toml_kind, name_of=_toml_name, is_light=_data_scalar),
    "json": Spec({"pair": "section"}, kind_of=_json_kind, name_of=_json_name, is_light=_data_scalar),
    "sql": Spec(_SQL_DEFS, frozenset({"statement"}), name_of=_sql_name, leading=frozenset({"marginalia"})),
    "html": Spec({"element": "section"}, kind_of=_html_kind, name_of=_html_name, flat=True),
    "css": Spec({"rule_set": "rule", "media_statement": "section", "supports_statement": "section",
                 "keyframes_statement": "section", "at_rule": "section"},
                name_of=_css_name, flat=True),
    "dockerfile": Spec({}, stage_starts=frozenset({"from_instruction"})),
    "make": Spec({"rule": "rule", "define_directive": "macro"}, kind_of=_make_kind, name_of=_make_name),
    "hcl": Spec({"block": "block"}, name_of=_hcl_name),
}


def def_kind(spec: Spec, node: Node) -> str | None:
    """The kind of definition ``node`` is, or ``None`` when it is none."""
    kind = spec.defs.get(node.type)
    if kind is None:
        return None
    if spec.kind_of is not None:
        return spec.kind_of(node, kind)
    return kind


def def_name(spec: Spec, node: Node) -> str:
    if spec.name_of is not None:
        return spec.name_of(node)
    return _field_text(node, "name")


def def_scope(spec: Spec, node: Node, symbol: str) -> str:
    """The prefix of the names defined inside ``node`` (``""``: they are not qualified)."""
    if spec.flat:
        return ""
    if spec.scope_of is not None:
        return spec.scope_of(node, symbol)
    return symbol


def is_light(spec: Spec, node: Node, kind: str | None) -> bool:
    """A definition named, but merged with its neighbours like a plain statement."""
    if kind in LIGHT_KINDS:
        return True
    return spec.is_light is not None and spec.is_light(node)


def is_leading(spec: Spec, node: Node) -> bool:
    """A node that belongs with the definition after it (comment, decorator, doc, signature)."""
    t = node.type
    if t in COMMON_LEADING or t in spec.leading:
        return True
    return spec.is_leading is not None and spec.is_leading(node)


def stage_name(node: Node) -> str:
    """A Dockerfile stage's name: its ``AS`` alias, else its image."""
    alias = node.child_by_field_name("as")
    if alias is not None:
        return text_of(alias)
    image = _first_child(node, ("image_spec",))
    if image is not None:
        return text_of(image.child_by_field_name("name")) or text_of(image)
    return ""


__all__ = ["CLASS_KINDS", "LIGHT_KINDS", "SPECS", "Spec", "UNQUALIFYING_KINDS", "def_kind", "def_name",
           "def_scope", "is_leading", "is_light", "stage_name", "text_of"]
