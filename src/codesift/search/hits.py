"""The typed search result shared by the CLI, the MCP server and the Python API."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Hit:
    path: str
    start_line: int
    end_line: int
    symbol: str
    kind: str
    language: str
    score: float
    content: str
    id: str = ""

    def as_dict(self) -> dict:
        return asdict(self)
