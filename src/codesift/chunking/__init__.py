"""Cut one decoded file into chunks of whole lines that fit the embedder's token budget.

Source code follows its syntax (tree-sitter, split-then-merge); markdown follows its
headings; anything else, or code whose parse fails or runs past its deadline, is cut
into line windows. Guarantees, for any input:

* every non-blank line lies in exactly one chunk, and no chunk is blank-only;
* chunks are ordered by ``start_line`` and do not overlap;
* ``content`` is exactly ``line_slice(lines, start_line, end_line)``;
* every chunk's ``count_tokens`` is within ``max_tokens``, except a single line that is
  over the budget on its own: it becomes its own chunk and ``note`` says so.

``tree_sitter`` is only imported when a file is parsed.
"""

from __future__ import annotations

from typing import Callable

from ..models import Chunk, ChunkingResult
from ..text import line_slice, split_lines
from .budget import LineCosts
from .languages import GRAMMARS, available_grammars, detect_language, language_from_shebang, refine_language
from .windows import Segment, line_windows, markdown_sections

__all__ = ["available_grammars", "chunk_text", "detect_language"]


def chunk_text(
    path: str,
    text: str,
    *,
    count_tokens: Callable[[list[str]], list[int]],
    max_tokens: int,
    parse_timeout_s: float = 10.0,
    language: str | None = None,
    hard_limit: bool = True,
) -> ChunkingResult:
    """The chunks of ``text`` (the decoded content of ``path``); see the module docstring.

    ``hard_limit`` says the embedder truncates past ``max_tokens``; when it does not
    (``max_tokens`` is only a size target), an over-long line needs no note.
    """
    lang = language or detect_language(path)
    lines = split_lines(text)
    if language is None and lang == "text" and lines:
        lang = language_from_shebang(lines[0]) or lang
    if language is None:
        lang = refine_language(lang, path, text)
    if not text.strip():
        return ChunkingResult(lang, [], None)
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")

    costs = LineCosts(lines, count_tokens, max_tokens)
    notes: list[str] = []
    segments = _segments(lang, text, costs, parse_timeout_s, notes)
    segments = _tidy(segments, costs)
    segments = _cover_gaps(segments, costs)
    segments, oversized = _enforce_budget(segments, lines, count_tokens, max_tokens, costs)
    if oversized and hard_limit:
        notes.append(_oversize_note(oversized, max_tokens))
    chunks = [
        Chunk(path, lang, symbol, kind, start, end, line_slice(lines, start, end))
        for start, end, symbol, kind in segments
    ]
    return ChunkingResult(lang, chunks, "; ".join(notes) if notes else None)


def _segments(lang: str, text: str, costs: LineCosts, timeout_s: float, notes: list[str]) -> list[Segment]:
    total = len(costs.lines)
    if lang == "markdown":
        return markdown_sections(costs)
    if lang not in GRAMMARS:
        return line_windows(costs, 1, total)
    from .syntax import ParseFailed, chunk_syntax

    try:
        segments, syntax_notes = chunk_syntax(lang, text, costs, timeout_s)
    except ParseFailed as exc:
        notes.append(f"{exc}; used line windows")
        return line_windows(costs, 1, total)
    except RecursionError:
        notes.append("syntax tree too deeply nested; used line windows")
        return line_windows(costs, 1, total)
    except Exception as exc:  # noqa: BLE001 - a grammar that fails to load, a chunker bug: degrade, say why
        notes.append(f"syntax chunking failed ({type(exc).__name__}: {exc}); used line windows")
        return line_windows(costs, 1, total)
    notes.extend(dict.fromkeys(syntax_notes))
    return segments


def _tidy(segments: list[Segment], costs: LineCosts) -> list[Segment]:
    """Trim blank lines off both ends of each segment; drop blank-only ones; order them."""
    out: list[Segment] = []
    blank = costs.blank
    for start, end, symbol, kind in segments:
        while start <= end and blank[start - 1]:
            start += 1
        while end >= start and blank[end - 1]:
            end -= 1
        if start <= end:
            out.append((start, end, symbol, kind))
    out.sort(key=lambda s: (s[0], s[1]))
    return out


def _cover_gaps(segments: list[Segment], costs: LineCosts) -> list[Segment]:
    """Safety net: line windows for any non-blank line that no segment covers."""
    blank = costs.blank
    total = len(blank)
    gaps: list[Segment] = []
    nxt = 1  # first line not yet covered
    for start, end, _, _ in segments:
        if start > nxt and costs.first_nonblank(nxt, start - 1) is not None:
            gaps.extend(line_windows(costs, nxt, start - 1))
        nxt = max(nxt, end + 1)
    if nxt <= total and costs.first_nonblank(nxt, total) is not None:
        gaps.extend(line_windows(costs, nxt, total))
    if not gaps:
        return segments
    return _tidy(segments + gaps, costs)


def _enforce_budget(
    segments: list[Segment],
    lines: list[str],
    count_tokens: Callable[[list[str]], list[int]],
    max_tokens: int,
    costs: LineCosts,
) -> tuple[list[Segment], list[int]]:
    """Count every chunk exactly; halve any multi-line chunk over the budget until it fits.

    Returns the segments and the lines that are over the budget on their own.
    """
    done: list[Segment] = []
    oversized: list[int] = []
    todo = segments
    while todo:
        counts = count_tokens([line_slice(lines, s, e) for s, e, _, _ in todo])
        again: list[Segment] = []
        for seg, n in zip(todo, counts):
            start, end, symbol, kind = seg
            if n <= max_tokens:
                done.append(seg)
            elif start == end:
                done.append(seg)
                oversized.append(start)
            else:
                mid = (start + end) // 2
                again.extend(_tidy([(start, mid, symbol, kind), (mid + 1, end, symbol, kind)], costs))
        todo = again
    done.sort(key=lambda s: (s[0], s[1]))
    oversized.sort()
    return done, oversized


def _oversize_note(oversized: list[int], max_tokens: int) -> str:
    if len(oversized) == 1:
        return (f"line {oversized[0]} exceeds the {max_tokens}-token limit; "
                f"its embedding covers only the first {max_tokens} tokens")
    shown = ", ".join(str(n) for n in oversized[:5])
    if len(oversized) > 5:
        shown += f" and {len(oversized) - 5} more"
    return (f"lines {shown} exceed the {max_tokens}-token limit; "
            f"their embeddings cover only the first {max_tokens} tokens")
