"""File name → language, and lazy, cached loading of the tree-sitter grammars.

Only the per-language grammar wheels are used (never tree-sitter-language-pack).
``tree_sitter`` itself is imported on the first parse, not when this module loads.
Parsers are not thread-safe, so each thread gets its own (``threading.local``);
``Language`` objects are immutable and shared.
"""

from __future__ import annotations

import importlib
import posixpath
import re
import threading
import warnings
from typing import Any

# language -> (module, function returning the grammar pointer)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "bash": ("tree_sitter_bash", "language"),
    "starlark": ("tree_sitter_python", "language"),  # Bazel/Buck build files: a Python dialect
    "kotlin": ("tree_sitter_kotlin", "language"),
    "scala": ("tree_sitter_scala", "language"),
    "swift": ("tree_sitter_swift", "language"),
    "elixir": ("tree_sitter_elixir", "language"),
    "haskell": ("tree_sitter_haskell", "language"),
    "lua": ("tree_sitter_lua", "language"),
    "zig": ("tree_sitter_zig", "language"),
    "dart": ("tree_sitter_dart", "language"),
    "yaml": ("tree_sitter_yaml", "language"),
    "toml": ("tree_sitter_toml", "language"),
    "json": ("tree_sitter_json", "language"),
    "sql": ("tree_sitter_sql", "language"),
    "html": ("tree_sitter_html", "language"),
    "css": ("tree_sitter_css", "language"),
    "dockerfile": ("tree_sitter_dockerfile", "language"),
    "make": ("tree_sitter_make", "language"),
    "hcl": ("tree_sitter_hcl", "language"),
}

EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c", ".h": "c",
    ".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp",
    ".hxx": "cpp", ".h++": "cpp", ".ipp": "cpp", ".tpp": "cpp", ".inl": "cpp",
    ".cs": "csharp",
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby", ".ru": "ruby",
    ".php": "php", ".phtml": "php",
    ".sh": "bash", ".bash": "bash", ".zsh": "bash", ".ksh": "bash",
    ".md": "markdown", ".markdown": "markdown",
    ".bzl": "starlark", ".bazel": "starlark", ".star": "starlark", ".sky": "starlark",
    ".kt": "kotlin", ".kts": "kotlin",
    ".scala": "scala", ".sc": "scala", ".sbt": "scala",
    ".swift": "swift",
    ".ex": "elixir", ".exs": "elixir",
    ".hs": "haskell", ".hs-boot": "haskell",  # (literate .lhs is prose around code: windows)
    ".lua": "lua", ".rockspec": "lua",
    ".zig": "zig", ".zon": "zig",
    ".dart": "dart",
    ".yaml": "yaml", ".yml": "yaml",
    ".toml": "toml",
    ".json": "json", ".jsonc": "json", ".json5": "json", ".geojson": "json", ".webmanifest": "json",
    ".sql": "sql", ".ddl": "sql",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".css": "css",
    ".dockerfile": "dockerfile",
    ".mk": "make", ".mak": "make", ".make": "make",
    ".tf": "hcl", ".tfvars": "hcl", ".hcl": "hcl", ".nomad": "hcl",
}

FILENAMES: dict[str, str] = {
    "rakefile": "ruby", "gemfile": "ruby", "guardfile": "ruby", "vagrantfile": "ruby",
    ".bashrc": "bash", ".bash_profile": "bash", ".profile": "bash", ".zshrc": "bash",
    "pkgbuild": "bash",
    "tiltfile": "starlark",  # (a bare BUILD is left alone: ./build is as often a shell script)
    "dockerfile": "dockerfile", "containerfile": "dockerfile",
    "makefile": "make", "gnumakefile": "make", "bsdmakefile": "make",
    ".clang-format": "yaml", ".clang-tidy": "yaml",
    "cargo.lock": "toml", "poetry.lock": "toml", "pipfile": "toml",
    ".babelrc": "json", ".eslintrc": "json", "tsconfig.json": "json",
}

# name prefixes (``Dockerfile.dev``, ``Makefile.am``); suffixes (``app.dockerfile``) are extensions
_NAME_PREFIXES: tuple[tuple[str, str], ...] = (("dockerfile.", "dockerfile"), ("containerfile.", "dockerfile"),
                                               ("makefile.", "make"))

# interpreter named on a "#!" line -> language
_SHEBANG: tuple[tuple[str, str], ...] = (
    ("python", "python"), ("node", "javascript"), ("ruby", "ruby"), ("php", "php"),
    ("bash", "bash"), ("zsh", "bash"), ("ksh", "bash"), ("sh", "bash"),
    ("lua", "lua"), ("luajit", "lua"), ("elixir", "elixir"), ("runhaskell", "haskell"), ("runghc", "haskell"),
    ("make", "make"), ("gmake", "make"),
)

LANGUAGES: tuple[str, ...] = (*GRAMMARS, "markdown", "text")


def detect_language(path: str) -> str:
    """The language of ``path`` from its name alone; ``"text"`` when unknown."""
    name = posixpath.basename(path.replace("\\", "/")).lower()
    lang = FILENAMES.get(name)
    if lang:
        return lang
    _, ext = posixpath.splitext(name)
    lang = EXTENSIONS.get(ext)
    if lang:
        return lang
    if ext[1:] not in _NOT_VARIANTS:
        for prefix, lang in _NAME_PREFIXES:
            if name.startswith(prefix):
                return lang
    return "text"


# ``dockerfile.vim`` is an editor's syntax file, ``Makefile.orig`` a leftover: not variants
_NOT_VARIANTS = frozenset({"vim", "el", "txt", "rst", "orig", "bak", "swp", "tmp", "log", "html", "xml",
                           "sublime-syntax"})

# C++ that a ``.h`` header gives away in its first 64 KiB
_CPP_MARKERS = re.compile(
    r"^[ \t]*(?:namespace[ \t]+[A-Za-z_]|template[ \t]*<|class[ \t]+[A-Za-z_]\w*[^;(]*\{|"
    r"(?:public|private|protected)[ \t]*:|using[ \t]+namespace[ \t]|extern[ \t]+\"C\+\+\"|"
    r"#[ \t]*include[ \t]*<(?:string|vector|memory|map|utility|type_traits|cstdint|cstddef|iostream|"
    r"algorithm|functional|atomic|mutex|thread|tuple|array|optional|cstring|limits)>)",
    re.MULTILINE | re.ASCII)
_SNIFF_CHARS = 64 * 1024


def refine_language(lang: str, path: str, text: str) -> str:
    """A better guess from the content when the name is ambiguous: a ``.h`` file written in
    C++ (namespaces, templates, classes) is parsed as C++, which the C grammar cannot read."""
    if lang == "c" and path.lower().endswith(".h"):
        if _CPP_MARKERS.search(text, 0, _SNIFF_CHARS):
            return "cpp"
    return lang


def language_from_shebang(first_line: str) -> str | None:
    """The language named by a ``#!`` line (``#!/usr/bin/env python3``), if any."""
    if not first_line.startswith("#!"):
        return None
    words = first_line[2:].strip().split()
    if not words:
        return None
    prog = posixpath.basename(words[0])
    if prog == "env":
        rest = [w for w in words[1:] if not w.startswith("-")]
        if not rest:
            return None
        prog = posixpath.basename(rest[0])
    for prefix, lang in _SHEBANG:
        if prog == prefix or (prog.startswith(prefix) and prog[len(prefix):].lstrip("0123456789.") == ""):
            return lang
    return None


_lang_lock = threading.Lock()
_languages: dict[str, Any] = {}
_local = threading.local()


def get_language(lang: str) -> Any:
    """The cached ``tree_sitter.Language`` for ``lang``; raises on failure."""
    found = _languages.get(lang)
    if found is not None:
        return found
    with _lang_lock:
        found = _languages.get(lang)
        if found is not None:
            return found
        if lang not in GRAMMARS:
            raise LookupError(f"no tree-sitter grammar for {lang!r}")
        import tree_sitter

        module_name, func = GRAMMARS[lang]
        module = importlib.import_module(module_name)
        with warnings.catch_warnings():
            # tree-sitter-dockerfile 0.2 hands over its grammar as an int (deprecated, still supported)
            warnings.simplefilter("ignore", DeprecationWarning)
            found = tree_sitter.Language(getattr(module, func)())
        _languages[lang] = found
        return found


def get_parser(lang: str) -> Any:
    """This thread's ``tree_sitter.Parser`` for ``lang`` (parsers are not thread-safe)."""
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(lang)
    if parser is None:
        import tree_sitter

        parser = tree_sitter.Parser(get_language(lang))
        parsers[lang] = parser
    return parser


def available_grammars() -> dict[str, str | None]:
    """Each syntax language → ``None`` when its grammar loads, else the error text."""
    out: dict[str, str | None] = {}
    for lang in GRAMMARS:
        try:
            get_language(lang)
            out[lang] = None
        except Exception as exc:  # noqa: BLE001 - reported to the user by `doctor`
            out[lang] = f"{type(exc).__name__}: {exc}"
    return out
