"""Chunks that do not come from a syntax tree: line windows, and markdown sections."""

from __future__ import annotations

import re

from .budget import LineCosts

# (start_line, end_line, symbol, kind)
Segment = tuple[int, int, str, str]


def line_windows(costs: LineCosts, start: int, end: int, symbol: str = "", kind: str = "window") -> list[Segment]:
    """Lines ``start..end`` cut into windows within the budget, preferring blank-line cuts.

    A single line over the budget becomes a window of its own. Leading blank lines of
    a window are skipped (blank lines need no chunk).
    """
    out: list[Segment] = []
    blank = costs.blank
    a = start
    while a <= end:
        while a <= end and blank[a - 1]:
            a += 1
        if a > end:
            break
        b = costs.furthest_end(a, end)
        if b < a:  # the line alone is over the budget
            out.append((a, a, symbol, kind))
            a += 1
            continue
        if b < end:
            # Cut after a blank line in the second half of the window, when there is one.
            half = a + (b - a) // 2
            for k in range(b, half, -1):
                if blank[k - 1]:
                    b = k
                    break
        out.append((a, b, symbol, kind))
        a = b + 1
    return out


_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t#]*$")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")


def _headings(lines: list[str]) -> list[tuple[int, str]]:
    """(line, title) of each markdown heading outside fenced code blocks."""
    found: list[tuple[int, str]] = []
    fence: str | None = None
    prev_text = False  # previous line is paragraph text (could take a setext underline)
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if fence is not None:
            m = _FENCE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip(fence[0] + " \t"):
                fence = None
            prev_text = False
            continue
        m = _FENCE.match(line)
        if m:
            fence = m.group(1)
            prev_text = False
            continue
        m = _ATX.match(line)
        if m:
            found.append((n, (m.group(2) or "").strip()))
            prev_text = False
            continue
        if prev_text and _SETEXT.match(line) and n >= 2:
            title = lines[n - 2].strip()
            if found and found[-1][0] == n - 1:
                found.pop()
            found.append((n - 1, title))
            prev_text = False
            continue
        stripped = line.strip()
        prev_text = bool(stripped) and not stripped.startswith((">", "|", "<", "    ", "\t"))
    return found


def markdown_sections(costs: LineCosts, title_chars: int = 120) -> list[Segment]:
    """Heading-delimited sections; big ones split by line windows, tiny neighbours merged."""
    lines = costs.lines
    total = len(lines)
    heads = _headings(lines)
    sections: list[tuple[int, int, str]] = []
    starts = [n for n, _ in heads]
    if not starts or starts[0] > 1:
        sections.append((1, (starts[0] - 1) if starts else total, ""))
    for i, (n, title) in enumerate(heads):
        stop = heads[i + 1][0] - 1 if i + 1 < len(heads) else total
        sections.append((n, stop, title[:title_chars]))

    small = costs.max_tokens // 3
    out: list[Segment] = []
    acc: tuple[int, int, str] | None = None  # mergeable run of sections
    for start, end, title in sections:
        if costs.first_nonblank(start, end) is None:
            continue
        if not costs.fits(start, end):
            if acc:
                out.append((acc[0], acc[1], acc[2], "section"))
                acc = None
            out.extend(line_windows(costs, start, end, title, "section"))
            continue
        if acc and costs.fits(acc[0], end) and (
            costs.cost(acc[0], acc[1]) < small or costs.cost(start, end) < small
        ):
            acc = (acc[0], end, acc[2] or title)
            continue
        if acc:
            out.append((acc[0], acc[1], acc[2], "section"))
        acc = (start, end, title)
    if acc:
        out.append((acc[0], acc[1], acc[2], "section"))
    return out
