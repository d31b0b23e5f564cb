"""Plain-text rendering of results for people."""

from __future__ import annotations

from typing import TextIO


def render_index_summary(s: dict, out: TextIO) -> None:
    f, c = s["files"], s["chunks"]
    out.write(
        f"{s['status']}: {f['seen']} files seen, {f['indexed']} indexed, {f['unchanged']} unchanged, "
        f"{f['deleted']} deleted, {len(f['skipped'])} skipped; chunks {c['written']} written, "
        f"{c['deleted']} deleted, {c['total']} total; {s['duration_s']:.1f}s, "
        f"peak RSS {s['peak_rss_bytes'] / (1 << 20):.0f} MiB\n")
    for item in f["skipped"][:20]:
        out.write(f"  skipped {item['path']}: {item['reason']}\n")
    if len(f["skipped"]) > 20:
        out.write(f"  ... and {len(f['skipped']) - 20} more (codesift status)\n")
    for item in f.get("notes", [])[:10]:
        out.write(f"  note {item['path']}: {item['note']}\n")


_SNIPPET_LINES = 12
_LEXERS = {"python": "python", "javascript": "javascript", "typescript": "typescript", "tsx": "tsx",
           "go": "go", "rust": "rust", "java": "java", "c": "c", "cpp": "cpp", "c_sharp": "csharp",
           "csharp": "csharp", "ruby": "ruby", "php": "php", "bash": "bash", "markdown": "markdown",
           "json": "json", "yaml": "yaml", "toml": "toml"}


def render_hits(hits, out: TextIO, *, color: bool | None = None, snippet_lines: int = _SNIPPET_LINES) -> None:
    """Each hit as ``path:start-end  symbol  [kind, language]  score`` and a numbered snippet.

    On a terminal (or ``color=True``) the snippet is syntax-highlighted with rich, imported
    only then."""
    if not hits:
        out.write("no hits\n")
        return
    if color is None:
        color = bool(getattr(out, "isatty", lambda: False)())
    if color:
        try:
            _render_rich(hits, out, snippet_lines)
            return
        except ImportError:
            pass
    for h in hits:
        out.write(_title(h) + "\n")
        lines = h.content.rstrip("\n").split("\n")
        for i, line in enumerate(lines[:snippet_lines]):
            out.write(f"  {h.start_line + i:>5} | {line.rstrip()}\n")
        if len(lines) > snippet_lines:
            out.write("        | ...\n")
        out.write("\n")


def _title(h) -> str:
    title = f"{h.path}:{h.start_line}-{h.end_line}"
    if h.symbol:
        title += f"  {h.symbol}"
    return f"{title}  [{h.kind}, {h.language}]  score {h.score:.3f}"


def _render_rich(hits, out: TextIO, snippet_lines: int) -> None:
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.text import Text

    console = Console(file=out, highlight=False, soft_wrap=False, force_terminal=True)
    for h in hits:
        title = Text()
        title.append(f"{h.path}:{h.start_line}-{h.end_line}", style="bold cyan")
        if h.symbol:
            title.append(f"  {h.symbol}", style="bold")
        title.append(f"  [{h.kind}, {h.language}]  score {h.score:.3f}", style="dim")
        console.print(title)
        lines = h.content.rstrip("\n").split("\n")
        code = "\n".join(lines[:snippet_lines])
        console.print(Syntax(code, _LEXERS.get(h.language, h.language or "text"), line_numbers=True,
                             start_line=h.start_line, word_wrap=False, theme="ansi_dark"))
        if len(lines) > snippet_lines:
            console.print("        ...", style="dim")
        console.print()
