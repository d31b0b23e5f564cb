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


def render_hits(hits, out: TextIO) -> None:
    if not hits:
        out.write("no hits\n")
        return
    for h in hits:
        title = f"{h.path}:{h.start_line}-{h.end_line}"
        if h.symbol:
            title += f"  {h.symbol}"
        out.write(f"{title}  [{h.kind}, {h.language}]  score {h.score:.3f}\n")
        lines = h.content.split("\n")
        for i, line in enumerate(lines[:12]):
            out.write(f"  {h.start_line + i:>5} | {line.rstrip()}\n")
        if len(lines) > 12:
            out.write("        | ...\n")
        out.write("\n")
