"""Line handling shared by chunking, storage and verification.

A "line" is split on ``\\n`` only (``\\r\\n`` stays one line ending), matching how
editors number lines; ``str.splitlines`` would also split on form feeds and Unicode
separators and shift every line number after them.
"""

from __future__ import annotations

BOM = "\ufeff"


def decode(data: bytes) -> str:
    """Decode file bytes as UTF-8, dropping a leading BOM. Raises UnicodeDecodeError."""
    text = data.decode("utf-8")
    if text.startswith(BOM):
        text = text[1:]
    return text


def split_lines(text: str) -> list[str]:
    """The lines of ``text`` with their endings; a trailing newline adds no empty line."""
    if not text:
        return []
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def line_slice(lines: list[str], start_line: int, end_line: int) -> str:
    """Lines ``start_line..end_line`` (1-based, inclusive), joined exactly."""
    return "".join(lines[start_line - 1 : end_line])
