"""benchmarks/EVAL.md holds one section per eval; each script rewrites only its own section."""

from __future__ import annotations

from pathlib import Path

HEADER = "# Search quality\n\n`make eval` runs both evals below (`EVAL=codesearch` or `EVAL=docstring` for one).\n"


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the ``name`` section of ``path`` (between HTML comment markers), or append it."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + block + ("\n" + tail if tail else "")
    else:
        if begin not in old and not old.startswith("# Search quality"):
            old = HEADER  # an EVAL.md from before the sections: replaced whole
        new = old.rstrip() + "\n\n" + block
    path.write_text(new, encoding="utf-8")
